"""The symbolic half of math grading: math-verify parse + verify and the numeric tolerance.

Everything here may be slow or hang on hostile input (sympy evaluates
``9^{9^{9^{9}}}`` and ``10^{10^{9}}`` eagerly, in C), so the router never runs
it in its own threads: :mod:`.grading_pool` runs :func:`grade` in a worker
process that is killed on timeout. In the worker, math-verify's own
``signal.alarm`` timeouts work (it is the worker's main thread) and a soft
timer stops Python-level loops; the kill covers what they cannot interrupt.

Gold texts come normalised by :func:`gold_text` (in the caller), predictions
by :mod:`.extract`; both pass :func:`prepare` before math-verify.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from typing import Any

from .extract import normalise_unicode
from .result import GoldAnswerError

MV_TIMEOUT_S = 1  # math-verify's own parse / verify timeouts (whole seconds; main thread only)
USE_MV_TIMEOUTS = True  # the grading worker turns them off: it runs its own timer
_THIN_SEP_RE = re.compile(r"(?<=\d)(?:\\,|\\ |~|\{,\})(?=\d{3}(?!\d))")
_SPACE_THOUSANDS_RE = re.compile(r"^-?\d{1,3}(?: \d{3})+(?:\.\d+)?$")
_E_NOTATION_RE = re.compile(r"^(-?\d+(?:\.\d+)?)[eE]([+-]?\d+)$")
_ESCAPED_DOLLAR_RE = re.compile(r"(?<!\\)\\\$")
_DOLLAR_RE = re.compile(r"(?<!\\)\$")
_DECIMAL_RE = re.compile(r"(?<![\d.])-?(\d*)\.(\d+)(?![\d.])")
_NAN_WORDS = {"nan", "-nan", "+nan"}
FLOAT_EPS = 1e-9  # relative: what float evaluation of an exact value may be off by


def gold_text(answer: Any) -> str:
    """The gold answer as one text; ``GoldAnswerError`` when it cannot stand for an answer.

    Numbers are written out (NaN and infinities are data errors, never matched
    by ``\\boxed{nan}``); a list is its elements as one comma list (one element:
    that element), matched like any set of answers.
    """
    if isinstance(answer, (list, tuple)):
        if not answer:
            raise GoldAnswerError("gold answer is an empty list")
        return ", ".join(gold_text(a) for a in answer) if len(answer) > 1 else gold_text(answer[0])
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise GoldAnswerError("gold answer is empty")
    if isinstance(answer, float) and not math.isfinite(answer):
        raise GoldAnswerError(f"gold answer {answer!r} is not a finite number")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        return repr(answer)
    text = str(answer).strip()
    if text.lower() in _NAN_WORDS:
        raise GoldAnswerError(f"gold answer {text!r} is a missing value, not an answer")
    return text


def prepare(text: str) -> str:
    """Unicode to LaTeX, escaped dollars and digit-group separators dropped, then math mode.

    ``\\$18.90`` is a price, not a math delimiter; "1\\,000" / "1{,}000" / "1 000"
    lose their separators. Comma groups ("1,000", "(1,234)") are left to
    math-verify, which reads a lone number's commas as thousands and keeps
    tuples and intervals intact. An unbalanced ``$`` is dropped.
    """
    text = normalise_unicode(str(text)).strip()
    text = _ESCAPED_DOLLAR_RE.sub(" ", text)
    text = _THIN_SEP_RE.sub("", text)
    if _SPACE_THOUSANDS_RE.match(text):
        text = text.replace(" ", "")
    text = _E_NOTATION_RE.sub(r"\1\\times 10^{\2}", text)
    if len(_DOLLAR_RE.findall(text)) % 2:
        text = _DOLLAR_RE.sub(" ", text)
    text = text.strip().rstrip(".").strip()
    if "$" in text or "\\boxed" in text or "\\(" in text or "\\[" in text:
        return text
    return f"${text}$"


def _timeout() -> int | None:
    on = USE_MV_TIMEOUTS and threading.current_thread() is threading.main_thread()
    return MV_TIMEOUT_S if on else None


def parse_text(text: str) -> list:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    return parse(prepare(text), extraction_config=(LatexExtractionConfig(), ExprExtractionConfig()),
                 parsing_timeout=_timeout())


@functools.lru_cache(maxsize=8192)
def _parse_gold_cached(gold: str) -> tuple:
    return tuple(parse_text(gold))


def parse_gold(text: str) -> list:
    """Parsed gold; ``GoldAnswerError`` if math-verify reads nothing (only its raw-string fallback)."""
    parsed = list(_parse_gold_cached(text))
    if not any(not isinstance(x, str) for x in parsed):
        raise GoldAnswerError(f"gold answer {text[:80]!r} cannot be parsed")
    return parsed


def math_equal(gold: list, pred: list) -> bool:
    from math_verify import verify

    return bool(verify(gold, pred, timeout_seconds=_timeout()))


def as_float(parsed: list) -> float | None:
    """The real number a parsed answer denotes (``x = 3`` -> 3), else None."""
    if not parsed:
        return None
    expr = parsed[0]
    rhs = getattr(expr, "rhs", None)
    if rhs is not None:
        expr = rhs
    try:
        val = complex(expr.evalf() if hasattr(expr, "evalf") else expr)
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None
    if abs(val.imag) > 1e-12 or not math.isfinite(val.real):
        return None
    return val.real


def numbers_close(gold: float, pred: float, pred_text: str) -> bool:
    """Geometry / numeric tolerance: the same value, or ``gold`` rounded to the decimals ``pred`` shows.

    Same value: within float error (``FLOAT_EPS`` relative). Rounded: ``pred_text``
    holds exactly one decimal number (units and exponents aside), with d >= 1 decimals, and enough
    precision to mean it (d >= 2, or >= 3 significant digits), and
    ``|gold - pred| <= 0.5 * 10^-d``. So 5.20 and 5.196 pass for 3*sqrt(3) but
    5.2 does not, and 48.0038 is not 48 (its four decimals claim 48.0038).
    """
    diff = abs(gold - pred)
    if diff <= FLOAT_EPS * max(1.0, abs(gold)):
        return True
    decimals = _DECIMAL_RE.findall(pred_text)
    if len(decimals) != 1:
        return False
    whole, frac = decimals[0]
    d = len(frac)
    significant = len((whole + frac).lstrip("0"))
    if d < 2 and significant < 3:
        return False
    return diff <= 0.5 * 10.0 ** -d * (1 + 1e-9) + FLOAT_EPS * abs(gold)


def grade(gold: str, preds: list[str], numeric: bool) -> tuple[str, str]:
    """(verdict, detail) for gold text against candidate answers, best first.

    verdict: "correct", "wrong", "not parseable" (no candidate parses) or
    "bad gold" (the gold cannot be parsed; detail says why).
    """
    try:
        g = parse_gold(gold)
    except GoldAnswerError as e:
        return "bad gold", str(e)
    parsed_any = False
    for text in preds:
        p = parse_text(text)
        if not p:
            continue
        parsed_any = True
        if math_equal(g, p):
            return "correct", ""
        if numeric:
            gv, pv = as_float(g), as_float(p)
            if gv is not None and pv is not None and numbers_close(gv, pv, normalise_unicode(text)):
                return "correct", ""
    return ("wrong", "") if parsed_any else ("not parseable", "")
