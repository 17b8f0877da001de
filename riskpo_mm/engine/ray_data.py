"""Records -> the prompt files OpenRLHF's Ray trainer reads (written into the run folder)."""

from __future__ import annotations

import math
from typing import Any, Optional

from riskpo_mm.config import RunConfig
from riskpo_mm.engine.assets import ensure_data, load_sources


class RayDataError(ValueError):
    """The data cannot make the run the config asks for."""


def user_functions(cfg: RunConfig) -> dict[str, str]:
    """``reward.functions`` with absolute file paths (Ray workers do not share the caller's directory)."""
    import os

    out = {}
    for task, spec in cfg.reward.functions.items():
        path, _, name = spec.rpartition(":")
        out[task] = f"{os.path.abspath(path)}:{name}"
    return out


def reward_spec(cfg: RunConfig) -> dict[str, Any]:
    """The run's reward settings as every label carries them to the Ray reward function
    (`riskpo_mm.rewards.openrlhf_reward`): weights, binary form, task scales, code sandbox limits."""
    r = cfg.reward
    return {"binary_form": r.binary_form,
            "tasks": {task: w.model_dump() for task, w in r.weights.items()},
            "task_weights": dict(r.task_weights),
            "functions": user_functions(cfg),
            "code": {"timeout_s": r.code_timeout_s, "memory_mb": r.code_memory_mb, "isolation": r.code_isolation,
                     "workers": r.workers}}


def prepare_ray_data(cfg: RunConfig, *, write: bool = True) -> tuple[dict[str, Any], Optional[str], int]:
    """Write `<run>/ray_data/{train,test}.jsonl` (absolute paths); return (data flags, eval file, max_samples).

    OpenRLHF runs `train.num_episodes` passes over `max_samples` prompts, `prompts_per_step` a step.
    `max_samples` is a multiple of `prompts_per_step` (a partial last batch would make a partial
    bundle); when the train set holds fewer than `steps x prompts_per_step` prompts the last pass is
    whole, so the run takes up to one pass more than `train.steps` (printed). `write=False` (dry
    runs) computes the same flags and writes nothing.
    """
    from riskpo_mm.openrlhf_ext.data import write_openrlhf_jsonl

    train_sources, test_sources = ensure_data(cfg)
    out = cfg.run_dir.resolve() / "ray_data"
    train = load_sources(cfg, train_sources, mix=True)
    P = cfg.rollout.prompts_per_step
    if len(train) < P:
        raise RayDataError(f"data.train has {len(train)} usable records, fewer than rollout.prompts_per_step ({P}): "
                           "not one step's worth of prompts")
    reward = reward_spec(cfg)
    system = cfg.data.system_prompt
    flags = write_openrlhf_jsonl(train, out / "train.jsonl", reward=reward, system_prompt=system, write=write)
    eval_file = None
    if test_sources:
        test = list(load_sources(cfg, test_sources, mix=False))[: cfg.eval.max_problems]
        eval_file = write_openrlhf_jsonl(test, out / "test.jsonl", reward=reward, system_prompt=system,
                                         write=write)["data.prompt_dataset"]
    wanted = cfg.train.steps * P
    per_pass = min(wanted, len(train) // P * P)
    flags["train.num_episodes"] = episodes = math.ceil(wanted / per_pass)
    if episodes * per_pass != wanted:
        print(f"[riskpo-mm] data.train has {len(train)} records: {episodes} passes of {per_pass // P} steps run "
              f"{episodes * per_pass // P} steps (train.steps = {cfg.train.steps})")
    return flags, eval_file, per_pass
