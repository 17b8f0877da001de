"""RiskPO estimators, token entropy and KL, pure torch (no OpenRLHF import).

Method: docs/method.md sections 3-9. `build_estimator(name, options, seed)` gives "riskpo",
"grpo", "dr_grpo", "dapo", a registered estimator or a "file.py:Class" one, all implementing the
`Estimator` protocol: `advantages(rewards [P, n], groups=None, mask=None) -> [P, n]`, `metrics`,
`keep`, `state_dict()` and `load_state_dict()` (riskpo_mm/algo/registry.py).
"""

from riskpo_mm.algo.config import PRESET_ROLLOUT, RiskPOConfig
from riskpo_mm.algo.estimator import RiskPOEstimator
from riskpo_mm.algo.group import DAPOEstimator, DrGRPOEstimator, GRPOEstimator, grpo_advantage
from riskpo_mm.algo.loss import kl_penalty, masked_entropy, masked_mean
from riskpo_mm.algo.quantiles import QuantileTracker, masked_quantile
from riskpo_mm.algo.registry import ESTIMATORS, Estimator, build_estimator, build_options, register_estimator, resolve_estimator
from riskpo_mm.algo.step import AdvantageStep, StepResult

__all__ = [
    "PRESET_ROLLOUT",
    "RiskPOConfig",
    "RiskPOEstimator",
    "QuantileTracker",
    "masked_quantile",
    "GRPOEstimator",
    "DrGRPOEstimator",
    "DAPOEstimator",
    "grpo_advantage",
    "ESTIMATORS",
    "build_estimator",
    "build_options",
    "Estimator",
    "register_estimator",
    "resolve_estimator",
    "AdvantageStep",
    "StepResult",
    "masked_entropy",
    "masked_mean",
    "kl_penalty",
]
