"""How accuracy and format mix into the scalar reward, per task.

Defaults: the vision task types (geometry, numeric, mcq) use 0.9 accuracy +
0.1 format, as public geometry-VQA recipes do; math and code reward
correctness only (1.0 / 0.0); format is still reported. ``binary_form="pm1"``
maps each {0, 1} component to {-1, +1} (the +-1 reward of the RiskPO authors'
hard-math recipe): ``reward = wa * (2a - 1) + wf * (2f - 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from riskpo_mm import tasks

BINARY_FORMS = ("01", "pm1")


@dataclass(frozen=True)
class TaskWeights:
    """Weights of accuracy and format for one task."""

    accuracy: float = 1.0
    format: float = 0.0

    def __post_init__(self) -> None:
        if self.accuracy < 0 or self.format < 0:
            raise ValueError(f"reward weights must be >= 0, got accuracy={self.accuracy}, format={self.format}")


def _default_tasks() -> dict[str, TaskWeights]:
    return {"math": TaskWeights(1.0, 0.0), "code": TaskWeights(1.0, 0.0), "geometry": TaskWeights(0.9, 0.1),
            "numeric": TaskWeights(0.9, 0.1), "mcq": TaskWeights(0.9, 0.1)}


@dataclass(frozen=True)
class RewardWeights:
    """Per-task weights (unknown tasks use ``default``) and the binary form of the components."""

    tasks: Mapping[str, TaskWeights] = field(default_factory=_default_tasks)
    default: TaskWeights = TaskWeights(1.0, 0.0)
    binary_form: str = "01"

    def __post_init__(self) -> None:
        if self.binary_form not in BINARY_FORMS:
            raise ValueError(f"rewards.binary_form: expected one of {BINARY_FORMS}, got {self.binary_form!r}")

    def for_task(self, task: str) -> TaskWeights:
        """Configured weights, else a registered TaskSpec's defaults, else `default`."""
        if task in self.tasks:
            return self.tasks[task]
        spec = tasks.get(task)
        return TaskWeights(*spec.weights) if spec is not None and spec.weights is not None else self.default

    def combine(self, task: str, accuracy: float, format_ok: bool) -> float:
        w = self.for_task(task)
        a, f = float(accuracy), float(bool(format_ok))
        if self.binary_form == "pm1":
            a, f = 2.0 * a - 1.0, 2.0 * f - 1.0
        return w.accuracy * a + w.format * f

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> "RewardWeights":
        """From config: ``{"binary_form": "pm1", "tasks": {"geometry": {"accuracy": 0.9, "format": 0.1}}}``.

        Tasks not named keep their defaults. Unknown keys are errors naming the key.
        """
        allowed = {"binary_form", "tasks", "default"}
        bad = set(cfg) - allowed
        if bad:
            raise ValueError(f"rewards: unknown key(s) {sorted(bad)}; allowed: {sorted(allowed)}")
        tasks = _default_tasks()
        for name, w in (cfg.get("tasks") or {}).items():
            tasks[name] = _task_weights(w, f"rewards.tasks.{name}")
        default = _task_weights(cfg["default"], "rewards.default") if "default" in cfg else TaskWeights()
        return cls(tasks=tasks, default=default, binary_form=cfg.get("binary_form", "01"))


def _task_weights(w: Any, key: str) -> TaskWeights:
    if not isinstance(w, Mapping) or set(w) - {"accuracy", "format"}:
        raise ValueError(f"{key}: expected a mapping with keys 'accuracy' and/or 'format', got {w!r}")
    try:
        return TaskWeights(float(w.get("accuracy", 1.0)), float(w.get("format", 0.0)))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{key}: {e}") from e
