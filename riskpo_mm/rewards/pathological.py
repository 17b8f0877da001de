"""Hostile responses for the time-bound tests and benchmark: each must be graded (0) quickly.

Sizes reach ``extract.MAX_RESPONSE_CHARS`` (10 MB); the symbolic ones are the
inputs that hang sympy (exponent towers, huge powers and factorials, deep
nesting), one of them shaped to pass the cheap screen so that only the
worker kill stops it.
"""

from __future__ import annotations

MB = 1_000_000


def pathological_responses(size: int = 10 * MB) -> list[tuple[str, str]]:
    """(name, response) pairs; ``size`` is the length of the long ones (default 10 MB)."""
    t = "<think>x</think> "
    size -= 64  # room for the wrapping: every response stays within ``size``
    return [
        ("unclosed code fences", t + "```\n" * (size // 4)),
        ("nested unclosed boxes", t + "\\boxed{" * (size // 7)),
        ("deep braces in a box", t + "\\boxed{" + "{" * size),
        ("many boxes", t + "\\boxed{1}, " * (size // 11)),
        ("many answer phrases", t + "answer: " * (size // 8)),
        ("exponent tower", t + "\\boxed{9^{9^{9^{9}}}}"),
        ("10^{10^{9}}", t + "\\boxed{10^{10^{9}}}"),
        ("1000000!", t + "\\boxed{1000000!}"),
        ("5000 nested parentheses", t + "\\boxed{" + "(" * 5000 + "1" + ")" * 5000 + "}"),
        ("3000 nested fractions", t + "\\boxed{" + "\\frac{1}{" * 3000 + "2" + "}" * 3000 + "}"),
        ("nested parentheses under the length cap", t + "\\boxed{" + "(" * 1500 + "1" + ")" * 1500 + "}"),
        ("power of powers (passes the screen)", t + "\\boxed{(9^{9})^{(9^{9})}}"),
    ]
