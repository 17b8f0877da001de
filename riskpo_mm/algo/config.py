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
Center = Literal["none", "prompt"]

DEFAULT_GRID: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))


def _field(default: Any, description: str) -> Any:
    """A dataclass field documented by `description` (pydantic takes it as the field's description)."""
    return field(default=default, metadata={"description": description})


@dataclass
class RiskPOConfig:
    """The RiskPO estimator's options (`--riskpo.*` on the Ray engine); the defaults are the `riskpo`
    preset, the paper's (docs/method.md sections 3-6, 8)."""

    # Each field's documentation is its `description` (field metadata, which pydantic reads).

    alpha: float = _field(
        0.2, "Lower quantile level, 0 < alpha < beta < 1: a = VaR_alpha of the bundle score; the CVaR tail lies "
        "below it and the RVaR band starts at it.")
    beta: float = _field(
        0.8, "Upper quantile level: b = VaR_beta, the end of the RVaR band; scores above b earn no more than b "
        "(except under objective seeking).")
    w_mix: float = _field(
        1.5, "Weight of the CVaR part under objective mvar, A = (w_mix A_cvar + A_rvar) / (w_mix + 1): the paper's "
        "1 + omega (omega = 0.5). Unused by rvar and seeking.")
    bundle_size: int = _field(
        5, "Questions per bundle (B): a paper takes one response of each and scores their reward sum; "
        "rollout.prompts_per_step must be a multiple of it (estimator riskpo).")
    bundle_by: BundleBy = _field(
        "order", "How prompts form bundles: order = B consecutive prompts in dataloader order, one quantile "
        "tracker; task = grouped by task first so a bundle never mixes reward scales, one tracker per task.")
    quantile_source: QuantileSource = _field(
        "tracked", "Where a and b come from: tracked = online trackers updated after each step (the paper); "
        "bundle = the bundle's own empirical quantiles (what the authors' code ran); mix = the mean of the two.")
    pairing: Pairing = _field(
        "random", "Which responses form a paper: random = each question's responses permuted by the estimator's "
        "seeded RNG (the paper); positional = paper j takes the j-th response of every question (authors' code).")
    baseline: Baseline = _field(
        "natural", "natural = add a - b so every A <= 0 (papers at or above b get 0); none = no baseline (RVaR "
        "part >= 0, CVaR part <= 0; hard-math recipe); tracked_mean = subtract each part's integral over the "
        "tracker grid (needs >= 2 track_grid levels).")
    scale: Scale = _field(
        "bundle_std", "bundle_std = divide A by the unbiased std of the bundle's paper scores (a std <= 1e-3 or "
        "a single paper counts as 1; the authors' setting); none = unscaled.")
    credit: Credit = _field(
        "uniform", "How a paper's advantage A reaches its responses: uniform = each gets A (the paper); "
        "question_std = A / the std of the question's n rewards (easy-math recipe); score = 0.5 A for a reward > 0, "
        "else 1.5 A; sum_mean = A (r_i - m_i) / sum of (r_k - m_k) over the paper, m the question's mean reward "
        "(hard-math recipe; can flip signs).")
    objective: Objective = _field(
        "mvar", "mvar = the mixed CVaR + RVaR objective (the paper, weighted by w_mix); rvar = the RVaR part "
        "alone (no mixing); seeking = RVaR plus an upper-tail term weighted by upper_weight (a risk-seeking "
        "ablation that collapses entropy).")
    center: Center = _field(
        "none", "none = responses keep their papers' advantages (the paper); prompt = subtract each prompt's mean "
        "advantage over its paired responses, a per-question baseline: removes the push shared by all of a "
        "question's responses (bench.signal's mean share; what breaks the answer format at larger learning "
        "rates) and keeps the differences between them (docs/method.md section 11).")
    upper_weight: float = _field(
        1.5, "Weight of the upper-tail term max(S - b, 0) / (1 - beta) under objective seeking; unused otherwise.")
    lr_q: float = _field(
        0.1, "Quantile-tracker step size (> 0): q += lr_k (level - fraction of the step's bundle scores below q) "
        "after each step; acts on a and b under quantile_source tracked or mix.")
    lr_q_decay: float = _field(
        0.0, "Tracker step decay: lr_k = lr_q / (1 + k) ** lr_q_decay at step k; 0 keeps the step constant.")
    track_grid: tuple[float, ...] = _field(
        DEFAULT_GRID, "Extra levels the trackers follow, strictly increasing in (0, 1): logged as "
        "tracked/q@<level> and integrated by baseline tracked_mean; they never move a and b.")

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

    @classmethod
    def preset_overrides(cls, name: str) -> dict[str, Any]:
        """The presets that set field `name` to something other than its default (the `riskpo` preset's)."""
        default = getattr(cls(), name)
        return {p: v for p, values in cls.PRESETS.items() if name in values and (v := values[name]) != default}


_LITERALS: dict[str, Any] = {
    "bundle_by": BundleBy,
    "quantile_source": QuantileSource,
    "pairing": Pairing,
    "baseline": Baseline,
    "scale": Scale,
    "credit": Credit,
    "objective": Objective,
    "center": Center,
}

# Rollout settings each preset implies (docs/method.md section 8): samples per prompt and reward form
# ("task": the task's own reward, "01": 0/1 accuracy, "pm1": +-1 accuracy).
PRESET_ROLLOUT: dict[str, dict[str, Any]] = {
    "riskpo": {"n_samples_per_prompt": 8, "reward": "task"},
    "riskpo_authors_easy_math": {"n_samples_per_prompt": 5, "reward": "01"},
    "riskpo_authors_hard_math": {"n_samples_per_prompt": 10, "reward": "pm1"},
    "riskpo_seeking": {"n_samples_per_prompt": 5, "reward": "01"},
}
