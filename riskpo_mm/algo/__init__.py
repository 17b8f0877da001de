"""RiskPO estimators, token entropy and KL, pure torch (no OpenRLHF import).

Method: docs/method.md sections 3-9. `build_estimator(name, config, seed)` gives "riskpo",
"grpo", "dr_grpo" or "dapo", all with `advantages(rewards [P, n], groups=None, mask=None) -> [P, n]`,
`metrics`, `state_dict()` and `load_state_dict()`.
"""

from riskpo_mm.algo.config import PRESET_ROLLOUT, RiskPOConfig
from riskpo_mm.algo.estimator import RiskPOEstimator
from riskpo_mm.algo.group import DAPOEstimator, DrGRPOEstimator, GRPOEstimator, grpo_advantage
from riskpo_mm.algo.loss import kl_penalty, masked_entropy, masked_mean
from riskpo_mm.algo.quantiles import QuantileTracker, masked_quantile
from riskpo_mm.algo.registry import ESTIMATORS, build_estimator
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
    "AdvantageStep",
    "StepResult",
    "masked_entropy",
    "masked_mean",
    "kl_penalty",
]
