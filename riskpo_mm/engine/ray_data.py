"""Records -> the prompt files OpenRLHF's Ray trainer reads (written into the run folder)."""

from __future__ import annotations

import math
from typing import Any, Optional

from riskpo_mm.config import RunConfig
from riskpo_mm.engine.assets import ensure_data, load_sources


def prepare_ray_data(cfg: RunConfig) -> tuple[dict[str, Any], Optional[str], int]:
    """Write `<run>/ray_data/{train,test}.jsonl`; return (data flags, eval file, max_samples).

    `max_samples` = steps x prompts_per_step, so OpenRLHF runs exactly `train.steps` steps
    (with `train.num_episodes` passes when the train set is smaller).
    """
    from riskpo_mm.openrlhf_ext.data import write_openrlhf_jsonl

    train_sources, test_sources = ensure_data(cfg)
    out = cfg.run_dir / "ray_data"
    train = load_sources(cfg, train_sources, mix=True)
    reward = {"binary_form": cfg.reward.binary_form,
              "tasks": {task: w.model_dump() for task, w in cfg.reward.weights.items()},
              "task_weights": dict(cfg.reward.task_weights)}
    flags = write_openrlhf_jsonl(train, out / "train.jsonl", reward=reward)
    eval_file = None
    if test_sources:
        test = load_sources(cfg, test_sources, mix=False)
        eval_file = write_openrlhf_jsonl(test, out / "test.jsonl", reward=reward)["data.prompt_dataset"]
    wanted = cfg.train.steps * cfg.rollout.prompts_per_step
    flags["train.num_episodes"] = max(1, math.ceil(wanted / max(1, len(train))))
    return flags, eval_file, min(wanted, len(train))
