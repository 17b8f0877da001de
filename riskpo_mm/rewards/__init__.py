"""Verifiable rewards: exact graders per task type and a sandbox for code.

``score(record, response)`` dispatches on ``record.task`` through the default
router (math, geometry, numeric, mcq, code; add more with ``register_task``)
and returns a :class:`RewardResult`. ``score_batch`` grades a rollout batch,
running code tasks concurrently in sandboxes.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from riskpo_mm import tasks
from riskpo_mm.tasks import TaskSpec

from .record_view import RecordView, as_record
from .result import GoldAnswerError, GradeOutcome, RewardResult
from .grading_pool import GradeTimeout
from .router import Grader, RewardRouter
from .weights import RewardWeights, TaskWeights

router = RewardRouter()


def score(record: Any, response: str | None, weights: RewardWeights | None = None) -> RewardResult:
    """Grade one response to one record with the default router. Never raises."""
    return router.score(record, response, weights)


def score_batch(records: Sequence[Any], responses: Sequence[str | None], weights: RewardWeights | None = None,
                workers: int | None = 4, batch_timeout_s: float | None = None,
                code_limits: Any = None) -> list[RewardResult]:
    """Grade a batch with the default router (code tasks on ``workers`` sandboxes at once, each under
    ``code_limits``, a `riskpo_mm.rewards.sandbox.SandboxLimits`)."""
    return router.score_batch(records, responses, weights, workers, batch_timeout_s, code_limits)


def register_task(task: "str | TaskSpec", grader: Grader | None = None, replace: bool = True) -> None:
    """Register a task type in this process: a `riskpo_mm.tasks.TaskSpec` (grader, prompt instruction,
    required record fields, default weights, SFT target), or a name and its grader
    ``(RecordView, response) -> GradeOutcome | float`` (the other parts take their defaults)."""
    spec = task if isinstance(task, TaskSpec) else TaskSpec(task, grader)
    router.register(spec.name, _as_outcome(spec.grader), replace)
    tasks.add(spec)


def _as_outcome(grader: Callable) -> Grader:
    """A grader that may return a float accuracy in [0, 1], as one that returns a `GradeOutcome`."""
    if getattr(grader, "runs_code", False):
        return grader  # code graders keep their signature (deadline, limits)

    @functools.wraps(grader)
    def graded(record: Any, response: str) -> GradeOutcome:
        out = grader(record, response)
        if isinstance(out, GradeOutcome):
            return out
        value = float(out)
        return GradeOutcome(value, True, f"{getattr(grader, '__name__', 'grader')}: {value:g}")

    return graded


def stats() -> dict[str, int]:
    """Counters of the default router (scored, errors, bad_gold, timeouts; per task too)."""
    return router.stats()


__all__ = ["GoldAnswerError", "GradeOutcome", "GradeTimeout", "Grader", "RecordView", "RewardResult", "RewardRouter",
           "RewardWeights", "TaskSpec", "TaskWeights", "as_record", "register_task", "router", "score", "score_batch",
           "stats"]
