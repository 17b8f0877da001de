"""Launching: configs translate to flags OpenRLHF's parser accepts; scripts print the exact commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from riskpo_mm.config import load_config
from riskpo_mm.engine.flags import openrlhf_argv
from riskpo_mm.engine.train import main as train_main
from riskpo_mm.openrlhf_ext.train_ray import parse_ray_args

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(REPO.glob("configs/*/*.yaml"))
GEO3K = REPO / "configs" / "geometry3k" / "qwen2_5_vl_3b_riskpo.yaml"


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parent.name}/{p.stem}" for p in CONFIGS])
def test_config_translates_to_flags_openrlhfs_parser_accepts(path):
    cfg = load_config(path)
    args = parse_ray_args(openrlhf_argv(cfg))
    assert args.actor.model_name_or_path == cfg.model.path
    assert args.rollout.batch_size == cfg.rollout.prompts_per_step
    assert args.rollout.n_samples_per_prompt == cfg.rollout.n_samples_per_prompt
    assert args.riskpo.estimator == cfg.algorithm.estimator
    assert args.riskpo.alpha == cfg.algorithm.riskpo.alpha and args.riskpo.credit == cfg.algorithm.riskpo.credit
    assert args.actor.adam.lr == cfg.train.lr
    assert tuple(args.actor.eps_clip_low_high) == (cfg.algorithm.loss.clip_low, cfg.algorithm.loss.clip_high)


def test_raw_openrlhf_flags_pass_through(tmp_path):
    cfg = load_config(GEO3K, ["ray.extra_args={vllm.enable_prefix_caching: true, ds.zpg: 2}"])
    args = parse_ray_args(openrlhf_argv(cfg))
    assert args.vllm.enable_prefix_caching is True and args.ds.zpg == 2


def test_bad_config_exits_2_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: {path: m}\ndata: {train: a.jsonl}\nrollout: {n_samples: 4}\n")
    assert train_main(["--config", str(bad)]) == 2
    assert "rollout.n_samples: unknown key" in capsys.readouterr().err


def _script(name: str, *args: str, env_extra: dict | None = None) -> str:
    env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, **(env_extra or {})}
    out = subprocess.run(["bash", str(REPO / "scripts" / name), *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_train_ray_script_dry_run_prints_the_job_submission(tmp_path):
    cfg = tmp_path / "geo.yaml"
    data = REPO / "data" / "records" / "sample.jsonl"
    cfg.write_text(load_config(GEO3K, [f"data.train=[{data}]", "data.test=[]",
                                            f"output_dir={tmp_path}/{{name}}"]).to_yaml())
    out = _script("train_ray.sh", str(cfg), "--set", "algorithm.riskpo.alpha=0.1")
    line = next(l for l in out.splitlines() if l.startswith("+ ray job submit"))
    assert "-- " + sys.executable + " -m riskpo_mm.openrlhf_ext.train_ray" in line
    assert "--riskpo.alpha 0.1" in line and "--actor.model_name_or_path Qwen/Qwen2.5-VL-3B-Instruct" in line
    assert f"--data.prompt_dataset {tmp_path}" in line  # the prepared OpenRLHF dataset


def test_train_ray_script_join_prints_ray_start():
    out = _script("train_ray.sh", "--join", env_extra={"RAY_HEAD_ADDRESS": "10.0.0.1:6379", "NUM_GPUS": "4"})
    assert out.strip() == "+ ray start --address 10.0.0.1:6379 --num-gpus 4"


def test_train_deepspeed_script_dry_run_prints_the_launcher_command():
    out = _script("train_deepspeed.sh", "configs/demo/geometry_tiny_cpu.yaml", "--resume", env_extra={"NUM_GPUS": "2"})
    assert "--num_gpus 2" in out and "--module riskpo_mm.engine.train --config configs/demo/geometry_tiny_cpu.yaml" in out
    assert out.rstrip().endswith("--set engine=local --resume")
