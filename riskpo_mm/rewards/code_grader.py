"""Code answers: the last ```python block, run against the record's tests in the sandbox."""

from __future__ import annotations

from .extract import code_block, think_format_ok
from .record_view import RecordView
from .result import GoldAnswerError, GradeOutcome
from .sandbox import SandboxLimits, normalise_tests, run_tests


class CodeGrader:
    """``task: code``: accuracy 1 only when every test passes; reason says passed/total and status."""

    runs_code = True

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()

    def __call__(self, record: RecordView, response: str, deadline: float | None = None,
                 limits: SandboxLimits | None = None) -> GradeOutcome:
        try:
            tests = normalise_tests(record.tests)
        except ValueError as e:
            raise GoldAnswerError(str(e)) from e
        if not (tests if isinstance(tests, list) else tests["inputs"]):
            raise GoldAnswerError("record has no tests")
        code, tagged = code_block(response)
        fmt = think_format_ok(response) and tagged
        if code is None or not code.strip():
            return GradeOutcome(0.0, fmt, "no code block")
        res = run_tests(code, tests, limits=limits or self.limits, deadline=deadline)
        reason = f"tests passed {res.passed}/{res.total} ({res.status})"
        return GradeOutcome(1.0 if res.all_passed else 0.0, fmt, reason)
