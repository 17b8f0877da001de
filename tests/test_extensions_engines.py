"""An estimator and a task from outside the package, one file each, named in the config, train on
both engines: the local engine and the Ray engine (whose controller and reward workers import the
files themselves)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from engine_helpers import run_config

EXT = Path(__file__).parent / "extensions"
ESTIMATOR = f"{EXT / 'centered_sign.py'}:CenteredSign"
TASK = {"word_length": f"{EXT / 'word_length_task.py'}:TASK"}
RAY = str(Path(sys.executable).with_name("ray"))


def _word_records(path: Path, n: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"w{i}", "task": "word_length", "prompt": f"A word of {3 + i % 4} letters?", "answer": str(3 + i % 4)}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _raw(root: Path, engine: str) -> dict:
    data = _word_records(root / "words" / "train.jsonl")
    return {
        "name": f"ext_{engine}", "engine": engine, "output_dir": str(root / "{name}"),
        "model": {"path": str(root / "text_model"), "dtype": "float32"},
        "data": {"train": [str(data)]},
        "rollout": {"prompts_per_step": 5, "n_samples_per_prompt": 4, "max_new_tokens": 8},
        "algorithm": {"estimator": ESTIMATOR, "options": {"scale": 0.5}},
        "reward": {"functions": TASK},
        "train": {"steps": 2, "lr": 1e-3, "micro_batch_size": 4},
        "eval": {"before_and_after": False},
        "checkpoint": {"every_steps": 1},
        "logging": {"tensorboard": False},
        "ray": {"gpus_per_node": 1, "vllm_num_engines": 1},
    }


def test_a_file_estimator_and_a_file_task_train_a_step_on_the_local_engine(tmp_path):
    from riskpo_mm.engine.local import LocalTrainer
    from riskpo_mm.rewards.user_functions import register_functions

    run_config(tmp_path, "model", text_model=True, images=False)  # builds the tiny text model
    raw = _raw(tmp_path, "local")
    from riskpo_mm.config import validate_config

    cfg = validate_config(raw)
    register_functions(cfg.reward.functions)  # what `riskpo-mm train` does before loading data
    trainer = LocalTrainer(cfg, log=False)
    records = [trainer.train_records[i] for i in trainer.order.take(5)]
    assert all(r.task == "word_length" for r in records)
    batch = trainer.rollout(records)
    assert "Answer with one word of that many letters." in getattr(trainer.processor, "tokenizer", trainer.processor).decode(batch.prompt_ids[0])
    adv = trainer.advantages(batch)
    centred = batch.rewards - batch.rewards.mean(1, keepdim=True)
    torch.testing.assert_close(adv, (0.5 * torch.sign(centred)).to(adv.dtype))
    assert trainer.step_fn.estimator.calls == 1 and trainer.step_fn.name == "centered_sign"
    trainer.close()


@pytest.mark.slow
def test_a_file_estimator_and_a_file_task_train_on_the_ray_engine(tmp_path):
    pytest.importorskip("vllm")
    if subprocess.run([RAY, "status"], capture_output=True).returncode == 0:
        pytest.skip("a Ray cluster is already running on this machine; this test starts and stops its own")
    run_config(tmp_path, "model", text_model=True, images=False)
    config = tmp_path / "ext_ray.yaml"
    config.write_text(yaml.safe_dump(_raw(tmp_path, "ray")))
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))}
    env.pop("RAY_ADDRESS", None)
    try:
        out = subprocess.run([sys.executable, "-m", "riskpo_mm.cli", "train", "--config", str(config)], env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
        steps = [json.loads(line) for line in (tmp_path / "ext_ray" / "metrics.jsonl").read_text().splitlines()]
        steps = [s for s in steps if "reward/mean" in s]
        assert [s["step"] for s in steps] == [1, 2]
        assert [s["centered_sign/calls"] for s in steps] == [1.0, 2.0]  # the controller ran the file's estimator
        assert all("reward/word_length" in s for s in steps)  # the reward workers graded the file's task
        assert all(s["centered_sign/positive_frac"] <= 1 for s in steps)
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)
