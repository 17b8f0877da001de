"""OpenRLHF's actor side, in process, for the local engine.

`LocalPolicy` owns what the local engine takes from OpenRLHF: the
`DeepspeedStrategy`, the `Actor` (also in float32, which OpenRLHF 0.11.2 does
not map), the optional reference model, and `ActorPPOTrainer.training_step`
with its own `PolicyLoss` (built from the same flags as on the Ray engine). The engine hands it rollouts as plain tensors
and gets back log-probs, entropies and training metrics.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import torch
import torch.distributed as dist

from riskpo_mm.openrlhf_ext import compat

compat.install()

from openrlhf.models import Actor, PolicyLoss  # noqa: E402
from openrlhf.trainer.ppo_utils.experience import Experience  # noqa: E402
from openrlhf.trainer.ray.ppo_actor import ActorPPOTrainer  # noqa: E402
from openrlhf.utils.deepspeed import DeepspeedStrategy  # noqa: E402
from openrlhf.utils.loss_utils import iter_grad_accum_global_norm  # noqa: E402
from openrlhf.utils.vlm_utils import merge_mm_train_inputs  # noqa: E402

from riskpo_mm.openrlhf_ext.dtype import fp32_param_dtype, keep_fp32_grad_norm  # noqa: E402

__all__ = ["Experience", "LocalPolicy", "PolicyActor", "PolicyLoss"]


class PolicyActor(Actor):
    """`Actor` with `param_dtype` in {"bf16", "fp16", "fp32"} (DeepSpeed trains "fp32" in float32)."""

    def __init__(self, pretrain_or_model: Any, *args: Any, param_dtype: str = "bf16", **kwargs: Any) -> None:
        with fp32_param_dtype():
            super().__init__(pretrain_or_model, *args, param_dtype=param_dtype, **kwargs)


def forget_stale_deepspeed_groups() -> None:
    """Drop the process groups DeepSpeed caches module-wide when no default group exists any more.

    A second trainer in one process (tests, notebooks) would otherwise reuse groups of a destroyed
    default group (a colocated vLLM engine's teardown destroys it) and fail in DeepSpeed's initial
    parameter broadcast ("Group ... is not registered").
    """
    if dist.is_initialized():
        return
    import deepspeed.utils.groups as groups

    for name in ("_WORLD_GROUP", "_ZERO_PARAM_INTRA_PARALLEL_GROUP", "_TENSOR_MODEL_PARALLEL_GROUP",
                 "_MODEL_PARALLEL_GROUP", "_DATA_PARALLEL_GROUP", "mesh_device"):
        if hasattr(groups, name):
            setattr(groups, name, None)
    for name in ("_EXPERT_PARALLEL_GROUP", "_EXPERT_PARALLEL_GROUP_RANKS", "_EXPERT_DATA_PARALLEL_GROUP",
                 "_EXPERT_DATA_PARALLEL_GROUP_RANKS", "_ALL_TO_ALL_GROUP"):
        if isinstance(getattr(groups, name, None), dict):
            getattr(groups, name).clear()


def init_single_process_env() -> None:
    """A one-rank process group for runs not started by a launcher (the `deepspeed` launcher sets these)."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")


class LocalPolicy:
    """Strategy + actor (+ reference) + OpenRLHF's PPO training step, configured from OpenRLHF `args`.

    args: OpenRLHF's hierarchized namespace (`riskpo_mm.engine.flags.openrlhf_args`), with `args.riskpo`.
    """

    def __init__(self, args: Any, model_path: str, *, scheduler_steps: int, warmup_ratio: float,
                 kl_coef: float = 0.0, gradient_checkpointing: bool = False) -> None:
        init_single_process_env()
        forget_stale_deepspeed_groups()
        self.args = args
        self.strategy = DeepspeedStrategy(
            seed=args.train.seed, max_norm=args.actor.max_norm, micro_train_batch_size=args.train.micro_batch_size,
            train_batch_size=args.train.batch_size, zero_stage=args.ds.zero_stage, args=args,
        )
        self.strategy.setup_distributed()
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.barrier()  # the main rank may still be writing the model folder
        self.device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        common = dict(attn_implementation=args.ds.attn_implementation, param_dtype=args.ds.param_dtype,
                      temperature=args.rollout.temperature)
        actor = PolicyActor(model_path, ds_config=self.strategy.get_ds_train_config(), **common)
        if gradient_checkpointing:
            actor.gradient_checkpointing_enable()
        optim_cfg = {
            "optim": "adam",
            "adam": {"lr": args.actor.adam.lr, "betas": tuple(args.actor.adam.betas), "eps": args.actor.adam.eps,
                     "weight_decay": args.actor.adam.weight_decay},
            "lr_scheduler": args.actor.lr_scheduler,
            "lr_warmup_ratio": warmup_ratio,
            "max_norm": args.actor.max_norm,
            "scheduler_steps": max(1, scheduler_steps),
        }
        self.actor, self.optim, self.scheduler = self.strategy.prepare((actor, optim_cfg))
        keep_fp32_grad_norm(self.actor.model)
        self.kl_coef = kl_coef
        self.ref = None
        if kl_coef > 0:
            self.ref = self.strategy.prepare(PolicyActor(model_path, **common))
            self.ref.eval()
        with compat.cuda_index_while_constructing():
            self.trainer = ActorPPOTrainer(self.strategy, self.actor, None, self.optim, self.scheduler,
                                           micro_train_batch_size=args.train.micro_batch_size,
                                           dataloader_pin_memory=False)

    @property
    def hf_model(self) -> torch.nn.Module:
        """The bare HF model (inside DeepSpeed's engine), for `generate` and `save_pretrained`."""
        model = self.actor.model
        return getattr(model, "module", model)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    @torch.no_grad()
    def score_experience(self, exp: Experience) -> torch.Tensor:
        """Fill old (and reference) log-probs [B, S-1]; return the true token entropy [B, S-1] of the policy."""
        self.actor.eval()
        old, ent, ref = [], [], []
        mb = self.args.train.micro_batch_size
        for i in range(0, exp.sequences.shape[0], mb):
            sl = slice(i, i + mb)
            mm = merge_mm_train_inputs(exp.mm_train_inputs[sl], self.device)
            seqs, am = exp.sequences[sl].to(self.device), exp.attention_mask[sl].to(self.device)
            act = exp.action_mask[sl].to(self.device)
            logp, out = self.actor(seqs, act, attention_mask=am, return_output=True, return_entropy=True, **mm)
            old.append(logp.cpu())
            ent.append(out.entropy[:, -act.shape[1]:].cpu())
            if self.ref is not None:
                ref.append(self.ref(seqs, act, attention_mask=am, **mm).cpu())
        exp.action_log_probs = torch.cat(old)
        if ref:
            exp.base_action_log_probs = torch.cat(ref)
        return torch.cat(ent)

    def train(self, exp: Experience, *, epochs: int, seed: int) -> dict[str, float]:
        """`epochs` passes of shuffled micro-batches through OpenRLHF's `training_step`; mean metrics."""
        from torch.utils.data import DataLoader

        buffer = self.trainer.replay_buffer
        buffer.append(exp)
        sums: dict[str, float] = defaultdict(float)
        count = 0
        for epoch in range(epochs):
            g = torch.Generator().manual_seed(seed + epoch)
            loader = DataLoader(buffer, batch_size=buffer.sample_batch_size, shuffle=True, generator=g,
                                collate_fn=buffer.collate_fn)
            micro = iter_grad_accum_global_norm(loader, self.strategy, self.strategy.accumulated_gradient,
                                                lambda e: e.action_mask)
            for i, (item, info) in enumerate(micro):
                item.to_device(self.device)
                status = self.trainer.training_step(item, self.kl_coef, i, info)
                for k, v in status["metrics"].items():
                    v = v.float().mean().item() if isinstance(v, torch.Tensor) else v
                    if isinstance(v, (int, float)):
                        sums[k] += float(v)
                count += 1
        buffer.clear()
        return {k: v / max(count, 1) for k, v in sums.items()}

    def save_model(self, out_dir: str, processor: Any) -> None:
        """HF folder (model + processor); collective under ZeRO-3."""
        self.strategy.save_model(self.actor, processor, out_dir)

    def save_state(self, out_dir: str) -> None:
        """DeepSpeed engine state: weights, optimizer, scheduler (collective)."""
        self.actor.model.save_checkpoint(out_dir, tag="state")

    def load_state(self, in_dir: str) -> None:
        self.actor.model.load_checkpoint(in_dir, tag="state")


def build_experience(**fields: Any) -> Experience:
    """An OpenRLHF `Experience` from the engine's tensors (see `Experience` for the fields)."""
    return Experience(**fields)
