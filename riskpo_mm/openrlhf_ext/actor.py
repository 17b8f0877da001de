"""RiskPO policy actor for OpenRLHF's Ray engine: a subclass of OpenRLHF's ``PolicyModelActor``.

Everything (forwards, OpenRLHF's ``PolicyLoss``, DeepSpeed update, weight sync to vLLM,
checkpoints) is OpenRLHF's, with three additions:

- ``--ds.param_dtype fp32`` trains in float32 (OpenRLHF maps only bf16/fp16) and logs the gradient
  norm DeepSpeed clips at (its float32 ZeRO-0 path drops it);
- without CUDA, the replay buffer is built while the device index reads 0 (OpenRLHF formats
  ``cuda:{current_device()}`` into a device it never uses on this path) and the weight sync
  runs over gloo (`compat.install_gloo_weight_sync`);
- the final model folder also gets the processor, so a saved VLM reloads as a VLM.

``RiskPOPolicyModelActor`` is the Ray actor class (``num_gpus=1`` like OpenRLHF's);
``RiskPOPolicyModelActorImpl`` is the plain class.
"""

from __future__ import annotations

import contextlib
import ray

from riskpo_mm.openrlhf_ext import compat

compat.install()

from openrlhf.trainer.ray.ppo_actor import PolicyModelActor  # noqa: E402

compat.install_gloo_weight_sync()

from riskpo_mm.openrlhf_ext.dtype import fp32_param_dtype, keep_fp32_grad_norm  # noqa: E402


def save_processor(pretrain: str, output_dir: str) -> bool:
    """Copy the processor of the model at ``pretrain`` (a VLM) into ``output_dir``; False for text models."""
    from transformers import AutoConfig, AutoProcessor

    if getattr(AutoConfig.from_pretrained(pretrain, trust_remote_code=True), "vision_config", None) is None:
        return False
    AutoProcessor.from_pretrained(pretrain, trust_remote_code=True).save_pretrained(output_dir)
    return True


class RiskPOPolicyModelActorImpl(PolicyModelActor.__ray_actor_class__):
    """OpenRLHF's ``PolicyModelActor`` in float32 if asked, on a CPU if need be, saving the processor."""

    def init_model_from_pretrained(self, strategy, pretrain, max_steps=None, vllm_engines=None):
        self.pretrain = pretrain
        with contextlib.ExitStack() as stack:
            if strategy.args.ds.param_dtype == "fp32":
                stack.enter_context(fp32_param_dtype())
            stack.enter_context(compat.cuda_index_while_constructing())
            super().init_model_from_pretrained(strategy, pretrain, max_steps=max_steps, vllm_engines=vllm_engines)
        keep_fp32_grad_norm(self.actor.model)

    def save_model(self):
        super().save_model()
        import torch.distributed as dist

        if not dist.is_initialized() or dist.get_rank() == 0:
            save_processor(self.pretrain, self.strategy.args.ckpt.output_dir)


RiskPOPolicyModelActor = ray.remote(num_gpus=1)(RiskPOPolicyModelActorImpl)
