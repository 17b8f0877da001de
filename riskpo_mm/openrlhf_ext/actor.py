"""RiskPO policy actor for OpenRLHF's Ray engine: a subclass of OpenRLHF's ``PolicyModelActor``.

After OpenRLHF builds the model, optimizer and its ``ActorPPOTrainer``, the trainer's loss is
replaced by `RiskPOPolicyLoss` (``--riskpo.loss riskpo``, the default); ``--riskpo.loss openrlhf``
keeps OpenRLHF's ``PolicyLoss``. Everything else (forwards, DeepSpeed update, weight sync to vLLM,
checkpoints) is OpenRLHF's.

``RiskPOPolicyModelActor`` is the Ray actor class (``num_gpus=1`` like OpenRLHF's);
``RiskPOPolicyModelActorImpl`` is the plain class.
"""

from __future__ import annotations

from typing import Any

import ray

from riskpo_mm.openrlhf_ext import compat

compat.install()

from openrlhf.trainer.ray.ppo_actor import PolicyModelActor  # noqa: E402

from riskpo_mm.openrlhf_ext.loss import RiskPOPolicyLoss  # noqa: E402


def install_riskpo_loss(actor_trainer: Any, args: Any) -> None:
    """Put the RiskPO loss on an OpenRLHF ``ActorPPOTrainer`` when ``--riskpo.loss riskpo``."""
    if args.riskpo.loss == "riskpo":
        actor_trainer.actor_loss_fn = RiskPOPolicyLoss.from_args(args)


class RiskPOPolicyModelActorImpl(PolicyModelActor.__ray_actor_class__):
    """OpenRLHF's ``PolicyModelActor`` whose PPO trainer computes the RiskPO loss."""

    def init_model_from_pretrained(self, strategy, pretrain, max_steps=None, vllm_engines=None):
        super().init_model_from_pretrained(strategy, pretrain, max_steps=max_steps, vllm_engines=vllm_engines)
        install_riskpo_loss(self.trainer, strategy.args)


RiskPOPolicyModelActor = ray.remote(num_gpus=1)(RiskPOPolicyModelActorImpl)
