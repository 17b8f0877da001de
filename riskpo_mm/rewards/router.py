"""One router: dispatch on ``record.task``, weight, never raise, count what went wrong."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from .choice import ChoiceGrader
from .code_grader import CodeGrader
from .grading_pool import GradeTimeout
from .math_grader import MathGrader, NumericGrader
from .record_view import RecordView, as_record
from .sandbox import SandboxLimits
from .result import GoldAnswerError, GradeOutcome, RewardResult
from .weights import RewardWeights

logger = logging.getLogger(__name__)
Grader = Callable[[RecordView, str], GradeOutcome]


class RewardRouter:
    """Task name -> grader. Built in: math, geometry, numeric, mcq, code.

    A grader is ``grader(record: RecordView, response: str) -> GradeOutcome``;
    one with ``runs_code = True`` (and a ``deadline`` keyword) is run on worker
    threads by :meth:`score_batch`, every other one in the calling thread.
    """

    def __init__(self, weights: RewardWeights | None = None) -> None:
        self.weights = weights or RewardWeights()
        self._graders: dict[str, Grader] = {}
        self._lock = threading.Lock()
        self._stats: Counter = Counter()
        for name, grader in (("math", MathGrader()), ("geometry", NumericGrader()), ("numeric", NumericGrader()),
                             ("mcq", ChoiceGrader()), ("code", CodeGrader())):
            self.register(name, grader)

    def register(self, name: str, grader: Grader, replace: bool = True) -> None:
        """Add (or replace) the grader of task ``name``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"register_task: task name must be a non-empty string, got {name!r}")
        if not callable(grader):
            raise TypeError(f"register_task({name!r}): grader must be callable, got {type(grader).__name__}")
        with self._lock:
            if name in self._graders and not replace:
                raise ValueError(f"register_task: task {name!r} already registered")
            self._graders[name] = grader

    def tasks(self) -> list[str]:
        return sorted(self._graders)

    def score(self, record: Any, response: str | None, weights: RewardWeights | None = None,
              deadline: float | None = None, code_limits: SandboxLimits | None = None) -> RewardResult:
        """Grade one response. Never raises: an internal error gives reward 0 and reason "error: ...".

        Built-in graders return within a bound in any thread (docs/grading.md:
        6 s worst case for responses up to 10 MB); a grade cut off there is 0
        with reason "error: timeout: ...", counted under ``timeouts``. ``code_limits`` (timeout,
        memory, isolation of each sandboxed run) go to graders that run code and take ``limits``.
        """
        task = "?"
        try:
            rec = as_record(record)
            task = rec.task
            grader = self._graders.get(task)
            if grader is None:
                raise ValueError(f"unknown task {task!r}; registered: {self.tasks()}")
            if response is None:
                response = ""
            if not isinstance(response, str):
                raise TypeError(f"response must be a string, got {type(response).__name__}")
            if getattr(grader, "runs_code", False) and "deadline" in inspect.signature(grader).parameters:
                extra = {"limits": code_limits} if code_limits is not None and "limits" in inspect.signature(
                    grader).parameters else {}
                out = grader(rec, response, deadline=deadline, **extra)
            else:
                out = grader(rec, response)
            reward = (weights or self.weights).combine(task, out.accuracy, out.format_ok)
            self._count(task, "scored")
            return RewardResult(float(reward), float(out.accuracy), bool(out.format_ok), task, out.reason)
        except GoldAnswerError as e:
            return self.report_error(task, f"error: bad gold answer: {e}", record, key="bad_gold")
        except GradeTimeout as e:
            return self.report_error(task, f"error: timeout: {e}", record, key="timeouts")
        except Exception as e:
            return self.report_error(task, f"error: {type(e).__name__}: {e}", record)

    def score_batch(self, records: Sequence[Any], responses: Sequence[str | None],
                    weights: RewardWeights | None = None, workers: int | None = 4,
                    batch_timeout_s: float | None = None,
                    code_limits: SandboxLimits | None = None) -> list[RewardResult]:
        """Grade a rollout batch: code tasks concurrently (``workers`` sandboxes), the rest here.

        ``batch_timeout_s`` bounds the code runs of the whole batch; runs cut
        off report a timeout. Lengths of records and responses must match.
        """
        if len(records) != len(responses):
            raise ValueError(f"score_batch: {len(records)} records but {len(responses)} responses")
        deadline = time.monotonic() + batch_timeout_s if batch_timeout_s else None
        results: list[RewardResult | None] = [None] * len(records)
        code_idx = [i for i, r in enumerate(records) if self._runs_code(r)]
        pool = ThreadPoolExecutor(max_workers=max(1, workers or 1)) if code_idx else None
        try:
            futures = {i: pool.submit(self.score, records[i], responses[i], weights, deadline, code_limits)
                       for i in code_idx} if pool else {}
            for i in range(len(records)):
                if i not in futures:
                    results[i] = self.score(records[i], responses[i], weights)
            for i, f in futures.items():
                results[i] = f.result()
        finally:
            if pool:
                pool.shutdown(wait=True)
        return results  # type: ignore[return-value]

    def _runs_code(self, record: Any) -> bool:
        try:
            task = record.get("task") if isinstance(record, dict) else getattr(record, "task", None)
        except Exception:
            return False
        return bool(getattr(self._graders.get(task), "runs_code", False)) if isinstance(task, str) else False

    def _count(self, task: str, key: str) -> None:
        with self._lock:
            self._stats[key] += 1
            self._stats[f"{key}/{task}"] += 1

    def report_error(self, task: str, reason: str, record: Any = None, key: str = "errors") -> RewardResult:
        """Count and log a grading failure; the zero-reward result that stands for it."""
        self._count(task, key)
        try:
            rid = record.get("id", "") if isinstance(record, dict) else getattr(record, "id", "")
        except Exception:
            rid = ""
        logger.warning("reward %s for record %r (task %s): %s", key, rid, task, reason)
        return RewardResult(0.0, 0.0, False, task, reason)

    def stats(self) -> dict[str, int]:
        """Counters: scored, errors, bad_gold, timeouts, each also per task as "<key>/<task>"."""
        with self._lock:
            return dict(self._stats)

    def reset_stats(self) -> None:
        with self._lock:
            self._stats.clear()
