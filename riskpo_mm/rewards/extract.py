"""Pull the parts a grader needs out of a response text.

Template (see the data prompts): reasoning in ``<think>...</think>``, then the
final answer: ``\\boxed{...}`` (math, geometry, numeric, multiple choice) or a
```` ```python ```` fenced block (code).
"""

from __future__ import annotations

import re

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
ANSWER_IS_RE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*[:\s]*(.+?)(?:\.\s*$|\.\s+\S|\n|$)",
    re.IGNORECASE | re.DOTALL)
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_UNICODE = {"\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "\\times ", "\u00f7": "\\div ",
            "\u221a": "\\sqrt", "\u03c0": "\\pi ", "\u00b0": "^\\circ", "\u2009": "", "\u202f": "",
            "\u00a0": " ", "\uff0c": ",", "\u2032": "'"}


def normalise_unicode(text: str) -> str:
    """Map unicode minus, dashes, degree, pi, thin spaces to their ASCII/LaTeX forms."""
    for k, v in _UNICODE.items():
        text = text.replace(k, v)
    return text


def split_think(response: str) -> tuple[str | None, str]:
    """(reasoning, answer part). Reasoning is None without a closing ``</think>``."""
    idx = response.rfind(THINK_CLOSE)
    if idx < 0:
        return None, response
    start = response.find(THINK_OPEN)
    reasoning = response[start + len(THINK_OPEN) if 0 <= start < idx else 0:idx]
    return reasoning, response[idx + len(THINK_CLOSE):]


def think_format_ok(response: str) -> bool:
    """``<think>`` first, exactly one reasoning block, something after ``</think>``."""
    text = response.strip()
    return (text.startswith(THINK_OPEN) and text.count(THINK_OPEN) == 1 and text.count(THINK_CLOSE) == 1
            and text.index(THINK_CLOSE) > len(THINK_OPEN) and bool(text.split(THINK_CLOSE, 1)[1].strip()))


def boxed_contents(text: str) -> list[str]:
    """Contents of every top-level ``\\boxed{...}`` (nested braces kept), in order.

    An unclosed box (a truncated response) is dropped.
    """
    out = []
    pos = 0
    while True:
        m = _BOX_RE.search(text, pos)
        if not m:
            return out
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            i += 1
        if depth:
            return out
        out.append(text[m.end():i - 1].strip())
        pos = i


def unbox(text: str) -> str:
    """``text`` with every ``\\boxed{X}`` inside it replaced by ``X``."""
    while True:
        m = _BOX_RE.search(text)
        if not m:
            return text
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth:
            return text
        text = text[:m.start()] + text[m.end():i - 1] + text[i:]


def final_answer(response: str) -> tuple[str | None, str]:
    """(answer text, how found) from the part after ``</think>`` (whole text without it).

    The last ``\\boxed{}`` wins; a box nested in a box yields the outer content.
    Without a box, the last "answer is ..." / "answer: ..." phrase is used.
    """
    _, tail = split_think(response)
    boxes = boxed_contents(tail)
    if boxes:
        return unbox(boxes[-1]), "boxed"
    matches = list(ANSWER_IS_RE.finditer(tail))
    if matches:
        ans = matches[-1].group(1).strip().strip("$ ").rstrip(".").strip()
        if ans:
            return ans, "answer phrase"
    return None, "no boxed answer"


def code_block(response: str) -> tuple[str | None, bool]:
    """(code of the last fenced block after ``</think>``, whether it was tagged python)."""
    _, tail = split_think(response)
    blocks = _FENCE_RE.findall(tail)
    if not blocks:
        return None, False
    py = [code for lang, code in blocks if lang.lower() in ("python", "py", "python3")]
    if py:
        return py[-1], True
    return blocks[-1][1], False
