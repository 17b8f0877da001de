"""Math answers (math-verify) and numeric answers with tolerance (geometry, numeric), in bounded time.

The calling thread does only linear work: extraction (:mod:`.extract`) and a
cheap screen of the answer (:func:`screen`: length, nesting, numbers too
large to evaluate). The symbolic work (:func:`.symbolic.grade`) runs in a
:class:`.grading_pool.GradingPool` worker process that is killed when it
overruns, so ``score()`` returns within ``SCORE_BUDGET_S`` plus extraction
time in any thread; an overrun is a 0 reported as ``error: timeout: ...``
and counted under ``timeouts``. ``RISKPO_GRADER_WORKERS`` sets the pool size
(default ``min(4, cpus)``); ``0`` grades in-process (no time bound; tests of
the policy only).
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from typing import Any

from . import symbolic
from .extract import final_answers, think_format_ok
from .grading_pool import GradeTimeout, GradingPool
from .record_view import RecordView
from .result import GoldAnswerError, GradeOutcome

SCORE_BUDGET_S = 5.0  # symbolic work per grade, waiting for a worker included
MAX_NESTING = 40  # ( [ { depth; 5000 nested parentheses or 3000 nested \frac are refused unparsed
MAX_TOWER = 2  # exponent of an exponent is fine, one more level is refused
MAX_DIGITS = 1_000_000  # a literal power or factorial with more digits than this is refused
MAX_GOLD_CHARS = 20_000
_POWER_RE = re.compile(r"(\d+(?:\.\d+)?)\s*\^\s*\{?\s*(\d+(?:\.\d+)?)(?:\s*\^\s*\{?\s*(\d+(?:\.\d+)?))?")
_FACTORIAL_RE = re.compile(r"(\d+)\s*!")
_OPEN, _CLOSE = "([{", ")]}"

_pool: GradingPool | None = None
_pool_lock = threading.Lock()


def default_pool() -> GradingPool | None:
    """The shared grading pool (None when ``RISKPO_GRADER_WORKERS=0``: grade in-process)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            n = int(os.environ.get("RISKPO_GRADER_WORKERS", str(min(4, os.cpu_count() or 1))))
            if n <= 0:
                return None
            _pool = GradingPool(workers=n)
        return _pool


def _digits_of_power(base: str, exp: float) -> float:
    b = float(base)
    return exp * math.log10(b) if b > 1 else 0.0


def screen(text: str) -> str | None:
    """Why an answer text is refused before any parsing (None: fine). Linear in its length."""
    depth = deepest = tower = 0
    exp_depths: list[int] = []  # brace depths of the open exponent groups
    after_caret = False
    for ch in text:
        if ch in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
            if after_caret and ch == "{":
                exp_depths.append(depth)
        elif ch in _CLOSE:
            if exp_depths and exp_depths[-1] == depth:
                exp_depths.pop()
            depth = max(0, depth - 1)
        if ch == "^":
            tower = max(tower, len(exp_depths) + 1)
        after_caret = ch == "^" or (after_caret and ch == " ")
    if deepest > MAX_NESTING:
        return f"answer nested deeper than {MAX_NESTING}"
    if tower > MAX_TOWER or re.search(r"\^\s*\w+\s*\^\s*\w+\s*\^", text):
        return f"exponent tower higher than {MAX_TOWER}"
    for m in _POWER_RE.finditer(text):
        base, e1, e2 = m.groups()
        try:
            exp = float(e1) ** float(e2) if e2 else float(e1)
            if _digits_of_power(base, exp) > MAX_DIGITS:
                return "number too large to evaluate"
        except OverflowError:
            return "number too large to evaluate"
    for m in _FACTORIAL_RE.finditer(text):
        n = int(m.group(1)) if len(m.group(1)) < 9 else 10 ** 9
        if n > 200_000:  # 200000! has about 1e6 digits
            return "number too large to evaluate"
    return None


class MathGrader:
    """``task: math``: the final boxed answer (or "answer is ..."), compared by math-verify."""

    runs_code = False
    numeric = False

    def __init__(self, pool: GradingPool | None | str = "default", budget_s: float = SCORE_BUDGET_S) -> None:
        self._pool, self.budget_s = pool, budget_s

    @property
    def pool(self) -> GradingPool | None:
        return default_pool() if self._pool == "default" else self._pool  # type: ignore[return-value]

    def __call__(self, record: RecordView, response: str) -> GradeOutcome:
        gold = symbolic.gold_text(record.answer)
        if len(gold) > MAX_GOLD_CHARS:
            raise GoldAnswerError(f"gold answer longer than {MAX_GOLD_CHARS} characters")
        why = screen(gold)
        if why:
            raise GoldAnswerError(f"gold answer refused: {why}")
        answers, how = final_answers(response)
        fmt = how == "boxed" and think_format_ok(response)
        if not answers:
            return GradeOutcome(0.0, fmt, how)
        answers = [a for a in answers if screen(a) is None] or answers[:1]
        why = screen(answers[0])
        if why:
            return GradeOutcome(0.0, fmt, why)
        verdict, detail = self._grade(gold, answers)
        if verdict == "bad gold":
            raise GoldAnswerError(detail)
        if verdict == "correct":
            return GradeOutcome(1.0, fmt, "correct")
        return GradeOutcome(0.0, fmt, "answer not parseable" if verdict == "not parseable" else "wrong")

    def _grade(self, gold: str, answers: list[str]) -> tuple[str, str]:
        pool = self.pool
        if pool is None:
            return symbolic.grade(gold, answers, self.numeric)
        return pool.call("grade", (gold, answers, self.numeric), time.monotonic() + self.budget_s)


class NumericGrader(MathGrader):
    """``task: geometry / numeric``: math-verify, then the numeric tolerance of
    :func:`.symbolic.numbers_close` (same value, or the gold rounded to the decimals shown).

    Units and degree signs are stripped by math-verify's normalisation;
    fractions, roots and pi are evaluated.
    """

    numeric = True


__all__ = ["GradeTimeout", "MathGrader", "NumericGrader", "default_pool", "screen"]
