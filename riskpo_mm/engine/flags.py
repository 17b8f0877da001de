"""The YAML config as OpenRLHF command-line flags: one translation for both engines.

The Ray engine passes these flags to `python -m riskpo_mm.openrlhf_ext.train_ray`
(OpenRLHF's own parser plus our `--riskpo.*` group); the local engine parses
the same flags with the same parser to get the `args` namespace that
OpenRLHF's strategy and actor trainer read.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Optional

from riskpo_mm.config import RunConfig

REWARD_FUNC = Path(__file__).resolve().parents[1] / "rewards" / "openrlhf_reward.py"
PARAM_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def openrlhf_argv(
    cfg: RunConfig,
    *,
    data_flags: Optional[dict[str, Any]] = None,
    eval_dataset: Optional[str] = None,
    max_samples: Optional[int] = None,
    resume: bool = False,
    model_path: Optional[str] = None,
) -> list[str]:
    """Dotted OpenRLHF 0.11.2 flags plus `--riskpo.*` flags for `cfg`.

    `data_flags` are the `data.*` flags of the prepared prompt dataset
    (`riskpo_mm.openrlhf_ext.data.write_openrlhf_jsonl`); `model_path` replaces `model.path` (the
    SFT warm start). Every path is absolute: Ray workers resolve relative paths from the raylet's
    directory, not the caller's.
    """
    from riskpo_mm.openrlhf_ext.data import IMAGE_KEY, INPUT_KEY, LABEL_KEY
    from riskpo_mm.openrlhf_ext.flags import to_openrlhf_args

    if data_flags is None:  # keys of the files `write_openrlhf_jsonl` writes
        data_flags = {"data.input_key": INPUT_KEY, "data.label_key": LABEL_KEY, "data.image_key": IMAGE_KEY,
                      "data.apply_chat_template": True}

    run = cfg.run_dir.resolve()
    no_cuda = not _has_cuda()
    P, n = cfg.rollout.prompts_per_step, cfg.rollout.n_samples_per_prompt
    loss, alg = cfg.algorithm.loss, cfg.algorithm
    flags: dict[str, Any] = {
        "actor.model_name_or_path": local_or_hub(model_path or cfg.model.path),
        "ds.attn_implementation": cfg.model.attn_implementation,
        "ds.param_dtype": PARAM_DTYPE[cfg.model.dtype],
        "ds.zero_stage": cfg.train.zero_stage,
        "actor.gradient_checkpointing_enable": cfg.model.gradient_checkpointing,
        **data_flags,
        "data.max_len": cfg.data.max_prompt_len + cfg.rollout.max_new_tokens,
        "data.max_samples": max_samples,
        "rollout.batch_size": P,
        "rollout.n_samples_per_prompt": n,
        "rollout.max_new_tokens": cfg.rollout.max_new_tokens,
        "rollout.temperature": cfg.rollout.temperature,
        "rollout.top_p": cfg.rollout.top_p,
        "train.batch_size": cfg.train.batch_size or P * n,
        "train.micro_batch_size": cfg.train.micro_batch_size,
        "rollout.micro_batch_size": cfg.train.micro_batch_size,
        "train.max_epochs": cfg.train.ppo_epochs,
        "train.seed": cfg.seed,
        "actor.adam.lr": cfg.train.lr,
        "actor.adam.weight_decay": cfg.train.weight_decay,
        "actor.lr_warmup_ratio": cfg.train.warmup_steps / cfg.train.steps,
        "actor.lr_scheduler": cfg.train.lr_scheduler,
        "actor.max_norm": cfg.train.max_grad_norm,
        "actor.eps_clip_low_high": (loss.clip_low, loss.clip_high),
        "actor.dual_clip": loss.dual_clip,
        "actor.loss_agg_mode": "token-mean" if loss.agg == "token_mean" else "seq-mean-token-mean",
        "actor.policy_loss_type": "ppo" if loss.ratio == "token" else "gspo",
        "algo.advantage.is_correction_level": loss.is_correction,
        "actor.entropy_coef": loss.entropy_coef,
        "algo.kl.use_loss": loss.kl_coef > 0,
        "algo.kl.init_coef": loss.kl_coef,
        "reward.remote_url": str(REWARD_FUNC),
        "ckpt.path": str(run / "checkpoints"),
        "ckpt.output_dir": str(run / "final_model"),
        "ckpt.save_steps": cfg.checkpoint.every_steps or -1,
        "ckpt.max_num": cfg.checkpoint.keep_last,
        "ckpt.load_enable": resume,
        "ckpt.best_metric_key": f"eval/{cfg.eval.best_metric}" if cfg.eval.every_steps else None,
        "riskpo.eval_k": cfg.eval.k,
        "logger.tensorboard_dir": str(run / "tensorboard") if cfg.logging.tensorboard else None,
        "logger.wandb.project": cfg.logging.wandb_project if cfg.logging.wandb else None,
        "eval.steps": cfg.eval.every_steps or -1,
        "eval.dataset": eval_dataset,
        "eval.temperature": cfg.eval.temperature,
        "riskpo.eval_max_new_tokens": cfg.eval.max_new_tokens,
        "eval.n_samples_per_prompt": cfg.eval.n,
        "actor.num_nodes": cfg.ray.num_nodes,
        "actor.num_gpus_per_node": cfg.ray.gpus_per_node,
        "ref.num_nodes": cfg.ray.num_nodes,
        "ref.num_gpus_per_node": cfg.ray.gpus_per_node,
        "vllm.num_engines": cfg.ray.vllm_num_engines,
        "vllm.tensor_parallel_size": cfg.ray.vllm_tensor_parallel_size,
        "vllm.gpu_memory_utilization": cfg.ray.vllm_gpu_memory_utilization,
        "train.colocate_all": cfg.ray.colocate_all,
        "vllm.sync_backend": "gloo" if no_cuda else "nccl",
        "vllm.enforce_eager": no_cuda,
        "riskpo.metrics_file": str(run / "metrics.jsonl"),
        "riskpo.reward_clip": cfg.reward.clip_range,
        "riskpo.overlong_buffer": cfg.reward.overlong_buffer_len,
        "riskpo.overlong_factor": cfg.reward.overlong_penalty_factor,
        "riskpo.estimator": alg.estimator,
        "riskpo.estimator_options": json.dumps(alg.options) if alg.options else None,
        "riskpo.preset": alg.preset,
    }
    for f in dataclasses.fields(alg.riskpo):
        if f.init:
            flags[f"riskpo.{f.name}"] = getattr(alg.riskpo, f.name)
    flags.update(cfg.ray.extra_args)
    return to_openrlhf_args(flags)


def local_or_hub(path: str) -> str:
    """An existing or explicitly local model path made absolute; a hub id ("Qwen/Qwen2.5-VL-7B-Instruct") as is."""
    p = Path(path)
    return str(p.resolve()) if p.exists() or path.startswith((".", "/", "~")) else path


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def openrlhf_args(cfg: RunConfig, *, engine: str = "ray", **kwargs: Any):
    """Hierarchical OpenRLHF args for `cfg`, parsed by OpenRLHF's own parser and validation."""
    from riskpo_mm.openrlhf_ext.train_ray import parse_ray_args

    argv = openrlhf_argv(cfg, **kwargs)
    if engine == "local":  # the processes are the ones the `deepspeed` launcher (or nobody) started
        world = os.environ.get("WORLD_SIZE", "1")
        argv += ["--actor.num_nodes", "1", "--actor.num_gpus_per_node", world,
                 "--ref.num_nodes", "1", "--ref.num_gpus_per_node", world]
    return parse_ray_args(argv)
