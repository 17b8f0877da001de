"""Multiple-choice answers: the chosen letter, exactly one, or the option text."""

from __future__ import annotations

import re
import string

from .extract import (ANSWER_IS_RE, MAX_ANSWER_CHARS, MAX_RESPONSE_CHARS, PHRASE_WINDOW, boxed_contents,
                      normalise_unicode, split_think, think_format_ok, unbox)
from .record_view import RecordView
from .result import GoldAnswerError, GradeOutcome

_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_LETTER_ONLY_RE = re.compile(r"^\(?\s*([A-Za-z])\s*\)?\s*[.:)]?$")
_LETTER_LEAD_RE = re.compile(r"^\(?([A-Z])\s*[).:]\s+\S")
_SHORT_TAIL = 60
_STANDALONE_RE = re.compile(r"(?<![A-Za-z0-9\\])\(?([A-Z])\)?(?![A-Za-z0-9])")


def _clean(text: str) -> str:
    text = normalise_unicode(text)
    for _ in range(3):
        text = _TEXT_WRAP_RE.sub(r"\1", text)
    return text.replace("$", "").strip().strip("*").strip()


def _norm_option(text: str) -> str:
    return re.sub(r"\s+", " ", _clean(str(text))).strip().rstrip(".").lower()


def _letters(n_choices: int | None) -> str:
    return string.ascii_uppercase[: n_choices if n_choices else 10]


def gold_letter(record: RecordView) -> str:
    """Gold as a letter: "B", "(B)", or the text of one option."""
    ans = record.answer
    if ans is None or not str(ans).strip():
        raise GoldAnswerError("gold choice is empty")
    letters = _letters(len(record.choices) if record.choices else None)
    m = _LETTER_ONLY_RE.match(_clean(str(ans)))
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    if record.choices:
        hits = [letters[i] for i, c in enumerate(record.choices) if _norm_option(c) == _norm_option(ans)]
        if len(hits) == 1:
            return hits[0]
    raise GoldAnswerError(f"gold choice {str(ans)[:40]!r} is not a letter in {letters!r} nor one option's text")


def pick_letters(text: str, choices: list | None) -> set[str]:
    """Every choice ``text`` names: a letter form, or exactly an option's text."""
    letters = _letters(len(choices) if choices else None)
    text = _clean(text)
    m = _LETTER_ONLY_RE.match(text)
    if m and m.group(1).upper() in letters and (m.group(1).isupper() or len(text) <= 3):
        return {m.group(1).upper()}
    m = _LETTER_LEAD_RE.match(text)
    if m and m.group(1) in letters:
        return {m.group(1)}
    if choices:
        norm = _norm_option(text)
        hits = {letters[i] for i, c in enumerate(choices) if _norm_option(c) == norm}
        if hits:
            return hits
    found = _STANDALONE_RE.findall(text)
    return {f for f in found if f in letters}


class ChoiceGrader:
    """``task: mcq``: last boxed answer, else "answer: X"/"answer is (X)", else a short bare reply."""

    runs_code = False

    def __call__(self, record: RecordView, response: str) -> GradeOutcome:
        gold = gold_letter(record)
        if len(response) > MAX_RESPONSE_CHARS:
            return GradeOutcome(0.0, False, "response too long")
        _, tail = split_think(response)
        boxes = boxed_contents(tail)
        fmt = think_format_ok(response) and bool(boxes)
        rest = ""
        if boxes:
            if len(boxes[-1]) > MAX_ANSWER_CHARS:
                return GradeOutcome(0.0, fmt, "answer too long")
            text = unbox(boxes[-1])
        else:
            tail = tail[-PHRASE_WINDOW:]
            phrases = list(ANSWER_IS_RE.finditer(tail))
            if phrases:  # letters named after the last "answer is X" count too ("B. No, C.")
                text, rest = phrases[-1].group(1), tail[phrases[-1].end(1):]
            else:
                text = tail.strip() if len(tail.strip()) <= _SHORT_TAIL else None
        if not text:
            return GradeOutcome(0.0, fmt, "no boxed answer")
        picked = pick_letters(text, record.choices)
        if picked and rest:
            picked |= set(_STANDALONE_RE.findall(rest)) & set(_letters(len(record.choices or []) or None))
        if not picked:
            return GradeOutcome(0.0, fmt, "no choice found")
        if len(picked) > 1:
            return GradeOutcome(0.0, fmt, f"several choices {''.join(sorted(picked))}")
        return GradeOutcome(1.0 if picked == {gold} else 0.0, fmt, "correct" if picked == {gold} else "wrong")
