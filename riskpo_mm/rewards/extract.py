"""Pull the parts a grader needs out of a response text, in time linear in its length.

Template (see the data prompts): reasoning in ``<think>...</think>``, then the
final answer: ``\\boxed{...}`` (math, geometry, numeric, multiple choice) or a
```` ```python ```` fenced block (code).

Everything here is a single left-to-right scan (no nested rescans, no
backtracking regexes over unbounded text), so a 10 MB hostile response is read
in well under a second. Limits (see docs/grading.md): responses over
``MAX_RESPONSE_CHARS`` are not read, boxes and code fences are looked for in
the last ``BOX_WINDOW`` characters (the answer is at the end), box nesting
beyond ``MAX_BOX_NESTING`` (or brace nesting beyond ``MAX_BRACE_DEPTH``) ends
the scan, an answer over ``MAX_ANSWER_CHARS`` is refused, the "answer is"
phrase is looked for in the last ``PHRASE_WINDOW`` characters only.
"""

from __future__ import annotations

import re
from collections import deque
from typing import NamedTuple

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
MAX_RESPONSE_CHARS = 10_000_000
MAX_ANSWER_CHARS = 4000
MAX_BOX_NESTING = 64
PHRASE_WINDOW = 8000
BOX_WINDOW = 1_000_000  # boxes and code fences are read from the last 1 MB of the answer part
MAX_BRACE_DEPTH = 10_000
_KEEP_BOXES = 4096  # closed boxes remembered (the last ones: the answer is at the end)

_TOKEN_RE = re.compile(r"\\(?:boxed|fbox)\s*\{|\\[{}]|[{}]")
ANSWER_IS_RE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)[:\s]*(.+?)(?:\.\s*$|\.\s+\S|\n|$)",
    re.IGNORECASE | re.DOTALL)
FINAL_PHRASE_RE = re.compile(r"final answer is[:\s]*(.+?)(?:\.\s*$|\.\s+\S|\n|$)", re.IGNORECASE | re.DOTALL)
# What may stand between separately boxed parts of one answer: "\boxed{1}, \boxed{2} and \boxed{3}".
_JOIN_GAP_RE = re.compile(r"(?:\s|[,;.$]|\\[,;:! ]|\\q?quad\b|\\text\s*\{[^{}]{0,40}\}|\band\b|\bor\b|\\[()\[\]])*")
_JOIN_WORD_RE = re.compile(r"[,;]|\band\b|\bor\b|\\q?quad\b|\\text")
_MAX_JOIN_GAP = 80
_PROSE_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}[ \t]+[A-Za-z]{2,}(?![A-Za-z])")
_MATH_CHAR_RE = re.compile(r"[0-9A-Za-z]")
_LATEX_NOISE_RE = re.compile(r"\\text\s*\{[^{}]*\}|\\(?:begin|end)\s*\{[^{}]*\}|\\[A-Za-z]+")
_UNICODE = {"\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "\\times ", "\u00f7": "\\div ",
            "\u221a": "\\sqrt", "\u03c0": "\\pi ", "\u00b0": "^\\circ", "\u2009": "", "\u202f": "",
            "\u00a0": " ", "\uff0c": ",", "\u2032": "'"}


class Box(NamedTuple):
    """A closed ``\\boxed{...}``: text[start:end] is the whole box, text[cstart:cend] its content."""

    start: int
    cstart: int
    cend: int
    end: int
    depth: int  # boxes it sits inside (0: top level)


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


def scan_boxes(text: str) -> list[Box]:
    """Closed boxes of ``text`` in closing order (the last ``_KEEP_BOXES``), one pass.

    ``\\{`` and ``\\}`` are not group braces. An unclosed box (a truncated
    response) is dropped with everything inside it; nesting deeper than
    ``MAX_BOX_NESTING`` boxes ends the scan (what closed before it is kept).
    """
    out: deque[Box] = deque(maxlen=_KEEP_BOXES)
    depth = 0  # open braces of any kind
    boxes: list[tuple[int, int, int]] = []  # open boxes: (start, content start, brace depth at open)
    for m in _TOKEN_RE.finditer(text, max(0, len(text) - BOX_WINDOW)):
        tok = m.group()
        if tok[0] == "\\" and len(tok) == 2:
            continue
        if tok == "}":
            if depth == 0:
                continue
            depth -= 1
            if boxes and boxes[-1][2] == depth:
                start, cstart, _ = boxes.pop()
                out.append(Box(start, cstart, m.start(), m.end(), len(boxes)))
            continue
        if tok != "{":
            if len(boxes) >= MAX_BOX_NESTING:
                break
            boxes.append((m.start(), m.end(), depth))
        depth += 1
        if depth > MAX_BRACE_DEPTH:
            break
    return list(out)


def boxed_contents(text: str) -> list[str]:
    """Contents of every top-level ``\\boxed{...}`` (nested braces kept), in order.

    An unclosed box (a truncated response) is dropped.
    """
    return [text[b.cstart:b.cend].strip() for b in scan_boxes(text) if b.depth == 0]


def unbox(text: str) -> str:
    """``text`` with every ``\\boxed{X}`` inside it replaced by ``X`` (one pass)."""
    boxes = scan_boxes(text)
    if not boxes:
        return text
    cuts = sorted([(b.start, b.cstart) for b in boxes] + [(b.cend, b.end) for b in boxes])
    parts, pos = [], 0
    for a, b in cuts:
        parts.append(text[pos:a])
        pos = b
    parts.append(text[pos:])
    return "".join(parts)


def _joined(text: str, level: list[Box]) -> list[Box]:
    """The last box of ``level`` and the ones before it that are parts of the same answer."""
    group = [level[-1]]
    for prev in reversed(level[:-1]):
        gap = text[prev.end:group[0].start]
        if len(gap) > _MAX_JOIN_GAP or not _JOIN_GAP_RE.fullmatch(gap) or not _JOIN_WORD_RE.search(gap):
            break
        group.insert(0, prev)
    return group


def _prose_or_empty(rest: str) -> bool:
    """Whether text around inner boxes is words or nothing, rather than a formula (``\\frac{10}{...}``)."""
    if _PROSE_RE.search(rest):
        return True
    return not _MATH_CHAR_RE.search(_LATEX_NOISE_RE.sub(" ", rest))


def _phrase_after(text: str, start: int, end: int) -> str | None:
    """A "final answer is X" stated after the last box (between ``start`` and ``end``): X."""
    window = text[max(start, end - PHRASE_WINDOW):end]
    if "final answer is" not in window.lower():
        return None
    m = list(FINAL_PHRASE_RE.finditer(window))
    ans = m[-1].group(1).strip().strip("$ \"'").rstrip(".").strip() if m else ""
    return ans or None


def _answer_of(text: str, boxes: list[Box], level: list[Box], end: int) -> tuple[str, str | None]:
    """(answer, fallback) from the boxes of one nesting level (closing order) that ends at ``end``.

    A "final answer is X" after the last box overrides it (the later statement is the final one).
    """
    later = _phrase_after(text, level[-1].end, end)
    if later is not None:
        return later, None
    group = _joined(text, level)
    last = group[-1]
    inner = [b for b in boxes if b.depth == last.depth + 1 and last.cstart <= b.start and b.end <= last.cend]
    content = text[last.cstart:last.cend]
    if inner and len(group) == 1:
        rest = "".join(text[a.end:b.start] for a, b in zip([Box(0, 0, 0, last.cstart, 0)] + inner,
                                                             inner + [Box(last.cend, 0, 0, 0, 0)]))
        inner_answer = _answer_of(text, boxes, inner, last.cend)[0]
        if len(content) > MAX_ANSWER_CHARS or _prose_or_empty(rest):
            return inner_answer, None
        return unbox(content).strip(), inner_answer
    parts = [unbox(text[b.cstart:b.cend]).strip() if len(text[b.cstart:b.cend]) <= MAX_ANSWER_CHARS
             else text[b.cstart:b.cend] for b in group]
    return ", ".join(parts), None


def final_answers(response: str) -> tuple[list[str], str]:
    """(answer texts in order of preference, how found) from the part after ``</think>``.

    The last top-level ``\\boxed{}`` is the answer (unless a "final answer is
    X" follows it: then X); boxes before it joined by
    "," / "and" / "or" / ``\\quad`` / a short ``\\text{}`` are parts of it
    (``\\boxed{1}, \\boxed{2}`` -> ``1, 2``). A box holding boxes: a formula
    around them is read whole with the inner boxes unwrapped
    (``\\boxed{\\frac{10}{\\boxed{2}}}`` -> ``\\frac{10}{2}``, the inner box is the
    fallback); prose around them (a whole solution boxed) gives the inner
    answer. Without a box, the last "answer is ..." phrase. An answer longer
    than ``MAX_ANSWER_CHARS`` is refused ("answer too long").
    """
    if len(response) > MAX_RESPONSE_CHARS:
        return [], "response too long"
    _, tail = split_think(response)
    boxes = scan_boxes(tail)
    top = [b for b in boxes if b.depth == 0]
    if top:
        answer, fallback = _answer_of(tail, boxes, top, len(tail))
        if len(answer) > MAX_ANSWER_CHARS:
            return [], "answer too long"
        return [a for a in (answer, fallback) if a is not None and a.strip()] or [answer], "boxed"
    matches = list(ANSWER_IS_RE.finditer(tail[-PHRASE_WINDOW:]))
    if matches:
        ans = matches[-1].group(1).strip().strip("$ ").rstrip(".").strip()
        if ans:
            return ([ans], "answer phrase") if len(ans) <= MAX_ANSWER_CHARS else ([], "answer too long")
    return [], "no boxed answer"


def final_answer(response: str) -> tuple[str | None, str]:
    """(answer text, how found): the first of :func:`final_answers`, None without one."""
    answers, how = final_answers(response)
    return (answers[0] if answers else None), how


def code_block(response: str) -> tuple[str | None, bool]:
    """(code of the last fenced block after ``</think>``, whether it was tagged python).

    Fences pair up left to right (an opening ```` ```lang ```` line, then the next
    ```` ``` ````); an unclosed fence ends the search. One pass over the last
    ``BOX_WINDOW`` characters.
    """
    _, tail = split_think(response)
    blocks: list[tuple[str, str]] = []
    pos = max(0, len(tail) - BOX_WINDOW)
    while True:
        start = tail.find("```", pos)
        if start < 0:
            break
        nl = tail.find("\n", start + 3)
        if nl < 0:
            break
        close = tail.find("```", nl + 1)
        if close < 0:
            break
        head = tail[start + 3:nl]
        lang = re.match(r"[ \t]*([A-Za-z0-9_+-]*)", head).group(1)
        blocks.append((lang, tail[nl + 1:close]))
        pos = close + 3
    if not blocks:
        return None, False
    py = [code for lang, code in blocks if lang.lower() in ("python", "py", "python3")]
    if py:
        return py[-1], True
    return blocks[-1][1], False
