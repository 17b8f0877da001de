"""Math answers (math-verify) and numeric answers with tolerance (geometry, numeric).

math-verify guards parsing and comparison with ``signal.alarm``, which works
only in the main thread; elsewhere (OpenRLHF calls reward functions through
``asyncio.to_thread``) those timeouts are switched off (``None``), as its docs
ask, and the caller's own time limits apply.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from typing import Any

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from .extract import final_answer, normalise_unicode, think_format_ok
from .record_view import RecordView
from .result import GoldAnswerError, GradeOutcome

MV_TIMEOUT_S = 5
_EXTRACTION = (LatexExtractionConfig(), ExprExtractionConfig())
_THOUSANDS_RE = re.compile(r"(?<![\d.])(\d{1,3})((?:,\d{3})+)(?![\d,])")
_THIN_SEP_RE = re.compile(r"(?<=\d)(?:\\,|\\ |~|\{,\})(?=\d{3}(?!\d))")
_E_NOTATION_RE = re.compile(r"^(-?\d+(?:\.\d+)?)[eE]([+-]?\d+)$")
_DECIMALS_RE = re.compile(r"-?\d+\.(\d+)")


def _timeout() -> int | None:
    return MV_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _prepare(text: str) -> str:
    """Unicode to LaTeX, thousands separators dropped ("1,234" -> "1234"), then math mode."""
    text = normalise_unicode(str(text)).strip()
    text = _THIN_SEP_RE.sub("", text)
    text = _E_NOTATION_RE.sub(r"\1\\times 10^{\2}", text)
    text = _THOUSANDS_RE.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), text)
    text = text.strip().rstrip(".")
    if "$" in text or "\\boxed" in text or "\\(" in text or "\\[" in text:
        return text
    return f"${text}$"


def _parse(text: str) -> list:
    return parse(_prepare(text), extraction_config=_EXTRACTION, parsing_timeout=_timeout())


@functools.lru_cache(maxsize=8192)
def _parse_gold_cached(gold: str) -> tuple:
    return tuple(_parse(gold))


def parse_gold(answer: Any) -> list:
    """Parsed gold answer; ``GoldAnswerError`` if empty or unparseable (never a free 1.0)."""
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise GoldAnswerError("gold answer is empty")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = repr(answer)
    parsed = list(_parse_gold_cached(str(answer)))
    if not any(not isinstance(x, str) for x in parsed):  # only the raw-string fallback: LaTeX failed
        raise GoldAnswerError(f"gold answer {str(answer)[:80]!r} cannot be parsed")
    return parsed


def _math_equal(gold: list, pred: list) -> bool:
    return bool(verify(gold, pred, timeout_seconds=_timeout()))


def _as_float(parsed: list) -> float | None:
    """The real number a parsed answer denotes (``x = 3`` -> 3), else None."""
    if not parsed:
        return None
    expr = parsed[0]
    rhs = getattr(expr, "rhs", None)
    if rhs is not None:
        expr = rhs
    try:
        val = complex(expr.evalf() if hasattr(expr, "evalf") else expr)
    except (TypeError, ValueError, AttributeError):
        return None
    if abs(val.imag) > 1e-12 or not math.isfinite(val.real):
        return None
    return val.real


def numbers_close(gold: float, pred: float, pred_text: str, rel_tol: float, abs_tol: float) -> bool:
    """Equal within tolerance, or ``pred`` is ``gold`` rounded to the decimals it shows.

    Rounding counts only with >= 1 decimal shown and within 1 % (so "3.46" matches
    2*sqrt(3), "3" does not match 3.46).
    """
    diff = abs(gold - pred)
    if diff <= max(abs_tol, rel_tol * abs(gold)):
        return True
    m = _DECIMALS_RE.search(pred_text)
    if m:
        half_ulp = 0.5 * 10.0 ** -len(m.group(1))
        return diff <= half_ulp * (1 + 1e-9) and diff <= 1e-2 * abs(gold)
    return False


class MathGrader:
    """``task: math``: last boxed answer (or "answer is ..."), compared by math-verify."""

    runs_code = False

    def __call__(self, record: RecordView, response: str) -> GradeOutcome:
        gold = parse_gold(record.answer)
        ans, how = final_answer(response)
        fmt = think_format_ok(response) and how == "boxed"
        if ans is None:
            return GradeOutcome(0.0, fmt, how)
        pred = _parse(ans)
        if not pred:
            return GradeOutcome(0.0, fmt, "answer not parseable")
        if self.equal(gold, pred, ans):
            return GradeOutcome(1.0, fmt, "correct")
        return GradeOutcome(0.0, fmt, "wrong")

    def equal(self, gold: list, pred: list, pred_text: str) -> bool:
        return _math_equal(gold, pred)


class NumericGrader(MathGrader):
    """``task: geometry / numeric``: math-verify, then numeric tolerance.

    Units and degree signs are stripped by math-verify's normalisation;
    fractions, roots and pi are evaluated. Defaults: ``rel_tol=1e-4``,
    ``abs_tol=1e-8`` plus the rounding rule of :func:`numbers_close`.
    """

    def __init__(self, rel_tol: float = 1e-4, abs_tol: float = 1e-8) -> None:
        self.rel_tol, self.abs_tol = rel_tol, abs_tol

    def equal(self, gold: list, pred: list, pred_text: str) -> bool:
        if _math_equal(gold, pred):
            return True
        g, p = _as_float(gold), _as_float(pred)
        if g is None or p is None:
            return False
        return numbers_close(g, p, normalise_unicode(pred_text), self.rel_tol, self.abs_tol)
