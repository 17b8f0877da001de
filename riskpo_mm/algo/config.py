"""`RiskPOConfig`: every option of the RiskPO estimator (docs/method.md sections 3-6, 8).

Mixing is selected by `objective`: "mvar" is the mixed CVaR+RVaR objective (mixing on),
"rvar" is the range-VaR part alone (mixing off), "seeking" the risk-seeking ablation.
Rollout settings a preset implies (samples per prompt, reward form) live in
`PRESET_ROLLOUT`, not here: the estimator does not use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

BundleBy = Literal["order", "task"]
QuantileSource = Literal["tracked", "bundle", "mix"]
Pairing = Literal["random", "positional"]
Baseline = Literal["natural", "none", "tracked_mean"]
Scale = Literal["bundle_std", "none"]
Credit = Literal["uniform", "question_std", "score", "sum_mean"]
Objective = Literal["mvar", "rvar", "seeking"]

DEFAULT_GRID: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))


@dataclass
class RiskPOConfig:
    """Estimator options; the defaults are the `riskpo` preset (paper defaults; docs/method.md section 8)."""

    alpha: float = 0.2  # lower quantile level (CVaR tail, start of the RVaR band)
    beta: float = 0.8  # upper quantile level (end of the RVaR band)
    w_mix: float = 1.5  # weight of the CVaR part (paper's 1 + omega)
    bundle_size: int = 5  # questions per bundle (B)
    bundle_by: BundleBy = "order"
    quantile_source: QuantileSource = "tracked"
    pairing: Pairing = "random"
    baseline: Baseline = "natural"
    scale: Scale = "bundle_std"
    credit: Credit = "uniform"
    objective: Objective = "mvar"
    upper_weight: float = 1.5  # weight of the upper tail in objective "seeking"
    lr_q: float = 0.1  # quantile-tracker step size
    lr_q_decay: float = 0.0  # lr_q_k = lr_q / (1 + k) ** lr_q_decay
    track_grid: tuple[float, ...] = field(default=DEFAULT_GRID)  # extra tracked levels (logging, tracked_mean)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "riskpo": {},
        "riskpo_authors_easy_math": dict(
            beta=0.9, quantile_source="bundle", pairing="positional", credit="question_std"
        ),
        "riskpo_authors_hard_math": dict(
            quantile_source="bundle", pairing="positional", baseline="none", credit="sum_mean"
        ),
        "riskpo_seeking": dict(
            objective="seeking", quantile_source="bundle", pairing="positional", credit="question_std"
        ),
    }

    def __post_init__(self) -> None:
        for name, literal in _LITERALS.items():
            allowed = get_args(literal)
            if getattr(self, name) not in allowed:
                raise ValueError(f"RiskPOConfig.{name}: got {getattr(self, name)!r}; allowed: {', '.join(map(repr, allowed))}")
        if not (0.0 < self.alpha < self.beta < 1.0):
            raise ValueError(f"RiskPOConfig.alpha/beta: need 0 < alpha < beta < 1, got alpha={self.alpha}, beta={self.beta}")
        if isinstance(self.bundle_size, bool) or not isinstance(self.bundle_size, int) or self.bundle_size < 1:
            raise ValueError(f"RiskPOConfig.bundle_size: need an integer >= 1, got {self.bundle_size!r}")
        for name in ("w_mix", "upper_weight", "lr_q_decay"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"RiskPOConfig.{name}: need a number >= 0, got {getattr(self, name)!r}")
        if not self.lr_q > 0.0:
            raise ValueError(f"RiskPOConfig.lr_q: need a number > 0, got {self.lr_q!r}")
        grid = tuple(float(u) for u in self.track_grid)
        if any(not 0.0 < u < 1.0 for u in grid) or list(grid) != sorted(set(grid)):
            raise ValueError(f"RiskPOConfig.track_grid: need strictly increasing levels in (0, 1), got {self.track_grid!r}")
        if self.baseline == "tracked_mean" and len(grid) < 2:
            raise ValueError("RiskPOConfig.track_grid: baseline 'tracked_mean' needs at least 2 grid levels to integrate over")
        self.track_grid = grid

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "RiskPOConfig":
        """The named preset of docs/method.md section 8, with `overrides` applied on top."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown RiskPO preset {name!r}; allowed: {', '.join(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides})

    @classmethod
    def preset_names(cls) -> list[str]:
        return list(cls.PRESETS)


_LITERALS: dict[str, Any] = {
    "bundle_by": BundleBy,
    "quantile_source": QuantileSource,
    "pairing": Pairing,
    "baseline": Baseline,
    "scale": Scale,
    "credit": Credit,
    "objective": Objective,
}

# Rollout settings each preset implies (docs/method.md section 8): samples per prompt and reward form
# ("task": the task's own reward, "01": 0/1 accuracy, "pm1": +-1 accuracy).
PRESET_ROLLOUT: dict[str, dict[str, Any]] = {
    "riskpo": {"n_samples_per_prompt": 8, "reward": "task"},
    "riskpo_authors_easy_math": {"n_samples_per_prompt": 5, "reward": "01"},
    "riskpo_authors_hard_math": {"n_samples_per_prompt": 10, "reward": "pm1"},
    "riskpo_seeking": {"n_samples_per_prompt": 5, "reward": "01"},
}
