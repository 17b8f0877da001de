"""Estimators by name: "riskpo", "grpo", "dr_grpo", "dapo"."""

from __future__ import annotations

from typing import Optional

from riskpo_mm.algo.config import RiskPOConfig
from riskpo_mm.algo.estimator import RiskPOEstimator
from riskpo_mm.algo.group import DAPOEstimator, DrGRPOEstimator, GRPOEstimator

ESTIMATORS: dict[str, type] = {
    "riskpo": RiskPOEstimator,
    "grpo": GRPOEstimator,
    "dr_grpo": DrGRPOEstimator,
    "dapo": DAPOEstimator,
}


def build_estimator(name: str, config: Optional[RiskPOConfig] = None, seed: int = 0):
    """The estimator called `name` (config is used by "riskpo"; group estimators ignore it)."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; allowed: {', '.join(ESTIMATORS)}")
    return ESTIMATORS[name](config, seed=seed)
