"""What a grader returns and what the router hands back."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GradeOutcome:
    """A grader's verdict before weighting: accuracy in {0, 1}, template obeyed, why."""

    accuracy: float
    format_ok: bool
    reason: str


@dataclass(frozen=True)
class RewardResult:
    """Scored response. ``reward`` mixes accuracy and format; ``accuracy`` stays separate."""

    reward: float
    accuracy: float
    format_ok: bool
    task: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


class GoldAnswerError(ValueError):
    """The record's gold answer (or tests) cannot be used: a data error, never a free reward."""
