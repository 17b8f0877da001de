"""Task types in one object: `TaskSpec`, and the registry of the ones added by users.

A task type decides five things: how a response is graded (rewards), the instruction its prompts
end with (data templates), the record fields it needs (data records), its default reward weights
(rewards), and the response a perfect policy writes (the SFT warm start). A new task is one file
holding a `TaskSpec`, registered either

- in Python: ``riskpo_mm.rewards.register_task(spec)`` (this process only: the local engine), or
- in the config, on both engines: ``reward.functions: {my_task: "path/to/file.py:SPEC"}``, where
  ``SPEC`` is a `TaskSpec` (or a bare grader function, which takes the defaults below). The file is
  imported in every process that grades or builds prompts, Ray's reward workers included.

The built-in tasks (math, geometry, numeric, mcq, code) live in the modules that implement them.
This module imports nothing from the rest of the package, so every layer can read it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

RECORD_FIELDS = ("answer", "choices", "tests", "images")


@dataclass(frozen=True)
class TaskSpec:
    """Everything a task type decides.

    grader: ``grader(record, response) -> GradeOutcome`` or a float accuracy in [0, 1]; it must not
        raise (the router turns an exception into reward 0 and counts it) and must return quickly.
    instruction: the sentence appended to every prompt of the task (None: the math instruction,
        "... give the final answer in \\boxed{}.").
    requires: record fields that must be non-empty for the task, out of answer, choices, tests, images.
    weights: default ``(accuracy, format)`` reward weights (None: the router's default, 1.0 / 0.0);
        ``reward.weights.<task>`` in a config overrides them.
    gold_response: ``gold_response(record) -> str``, the SFT target (None: ``<think>rationale</think>``
        then ``\\boxed{answer}``).
    """

    name: str
    grader: Callable[[Any, str], Any]
    instruction: Optional[str] = None
    requires: tuple[str, ...] = ()
    weights: Optional[tuple[float, float]] = None
    gold_response: Optional[Callable[[Any], str]] = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"TaskSpec.name: expected a non-empty string, got {self.name!r}")
        if not callable(self.grader):
            raise TypeError(f"TaskSpec({self.name!r}).grader: expected a callable, got {type(self.grader).__name__}")
        unknown = sorted(set(self.requires) - set(RECORD_FIELDS))
        if unknown:
            raise ValueError(f"TaskSpec({self.name!r}).requires: unknown fields {unknown}; allowed {list(RECORD_FIELDS)}")
        if self.instruction is not None and not isinstance(self.instruction, str):
            raise TypeError(f"TaskSpec({self.name!r}).instruction: expected a string or None")
        if self.weights is not None and (len(self.weights) != 2 or min(self.weights) < 0):
            raise ValueError(f"TaskSpec({self.name!r}).weights: expected (accuracy, format) >= 0, got {self.weights!r}")
        if self.gold_response is not None and not callable(self.gold_response):
            raise TypeError(f"TaskSpec({self.name!r}).gold_response: expected a callable or None")


_TASKS: dict[str, TaskSpec] = {}
_lock = threading.Lock()


def add(spec: TaskSpec) -> None:
    """Record `spec` (replacing a spec of the same name). Graders go through `riskpo_mm.rewards.register_task`."""
    with _lock:
        _TASKS[spec.name] = spec


def get(name: str) -> Optional[TaskSpec]:
    """The user-registered spec of task `name`, or None (built-in or unknown)."""
    return _TASKS.get(name)
