"""Verifiable rewards: exact graders per task type and a sandbox for code.

``score(record, response)`` dispatches on ``record.task`` through the default
router (math, geometry, numeric, mcq, code; add more with ``register_task``)
and returns a :class:`RewardResult`. ``score_batch`` grades a rollout batch,
running code tasks concurrently in sandboxes.
"""

from __future__ import annotations

from typing import Any, Sequence

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


def register_task(name: str, grader: Grader, replace: bool = True) -> None:
    """Register a grader ``(RecordView, response) -> GradeOutcome`` for task ``name``."""
    router.register(name, grader, replace)


def stats() -> dict[str, int]:
    """Counters of the default router (scored, errors, bad_gold, timeouts; per task too)."""
    return router.stats()


__all__ = ["GoldAnswerError", "GradeOutcome", "GradeTimeout", "Grader", "RecordView", "RewardResult", "RewardRouter",
           "RewardWeights", "TaskWeights", "as_record", "register_task", "router", "score", "score_batch",
           "stats"]
