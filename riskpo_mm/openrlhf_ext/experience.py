"""The RiskPO experience maker for OpenRLHF's Ray trainer (imports vLLM through OpenRLHF).

Everything but the advantage step is OpenRLHF's ``RemoteExperienceMaker``: model forwards,
rewards, KL. The advantage step is `advantages.compute_riskpo_advantages` (our `AdvantageStep`) over the whole
rollout batch on the controller, before the batch is split across the actor ranks.
"""

from __future__ import annotations

from typing import Any, Optional

from riskpo_mm.openrlhf_ext.advantages import PromptOrder, RiskPOAdvantageMixin
from riskpo_mm.openrlhf_ext import compat

compat.install()

from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker  # noqa: E402


class RiskPOExperienceMaker(RiskPOAdvantageMixin, RemoteExperienceMaker):
    """``RemoteExperienceMaker`` with a riskpo_mm `AdvantageStep` (``step=None``: OpenRLHF's own estimators)."""

    def __init__(self, *args: Any, step: Any = None, prompt_order: Optional[PromptOrder] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.step = step
        self.prompt_order = prompt_order
        self.step_metrics = {}
