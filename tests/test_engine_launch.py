"""Launching: configs translate to flags OpenRLHF's parser accepts; scripts print the exact commands."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from riskpo_mm.config import load_config
from riskpo_mm.engine.flags import local_or_hub, openrlhf_argv
from riskpo_mm.engine.train import main as train_main
from riskpo_mm.openrlhf_ext.train_ray import parse_ray_args

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(REPO.glob("configs/*/*.yaml"))
GEO3K = REPO / "configs" / "geometry3k" / "qwen2_5_vl_3b_riskpo.yaml"


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parent.name}/{p.stem}" for p in CONFIGS])
def test_config_translates_to_flags_openrlhfs_parser_accepts(path):
    cfg = load_config(path)
    args = parse_ray_args(openrlhf_argv(cfg))
    assert args.actor.model_name_or_path == local_or_hub(cfg.model.path)
    for flag in (args.ckpt.path, args.ckpt.output_dir, *args.reward.remote_url, args.riskpo.metrics_file):
        assert os.path.isabs(flag)  # Ray workers resolve relative paths from the raylet's directory
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


def _geo_config(tmp_path, *overrides: str) -> Path:
    cfg = tmp_path / "geo.yaml"
    data = REPO / "data" / "records" / "sample.jsonl"
    cfg.write_text(load_config(GEO3K, [f"data.train=[{data}]", "data.test=[]", f"output_dir={tmp_path}/{{name}}",
                                       "rollout.prompts_per_step=5", "train.batch_size=25", "train.micro_batch_size=5", *overrides]).to_yaml())
    return cfg


def test_train_ray_script_dry_run_prints_pasteable_commands_with_absolute_paths(tmp_path):
    cfg = _geo_config(tmp_path)
    out = _script("train_ray.sh", str(cfg), "--set", "algorithm.riskpo.alpha=0.1")
    ray = str(Path(sys.executable).with_name("ray"))
    line = next(l for l in out.splitlines() if l.startswith(f"{ray} job submit"))
    argv = shlex.split(line)  # pasteable: the runtime-env JSON is quoted
    json.loads(argv[argv.index("--runtime-env-json") + 1])
    job = argv[argv.index("--") + 1:]
    assert job[:3] == [sys.executable, "-m", "riskpo_mm.openrlhf_ext.train_ray"]
    flags = {a: b for a, b in zip(job, job[1:]) if a.startswith("--") and not b.startswith("--")}
    assert flags["--riskpo.alpha"] == "0.1" and flags["--actor.model_name_or_path"] == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert flags["--data.prompt_dataset"] == f"{tmp_path}/geo3k_qwen2_5_vl_3b_riskpo/ray_data/train.jsonl"
    assert flags["--ckpt.path"].startswith(str(tmp_path))  # the run folder the user named, not a job folder
    assert any(l.startswith(f"{ray} start --head") for l in out.splitlines())
    assert not (tmp_path / "geo3k_qwen2_5_vl_3b_riskpo" / "ray_data").exists()  # a dry run writes nothing


def test_train_ray_script_reads_the_config_from_the_callers_directory(tmp_path):
    cfg = _geo_config(tmp_path)
    env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable}
    out = subprocess.run(["bash", str(REPO / "scripts" / "train_ray.sh"), cfg.name], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "job submit" in out.stdout


def test_train_ray_script_fails_before_starting_anything_on_a_missing_config(tmp_path):
    env = {**os.environ, "DRY_RUN": "", "PYTHON": sys.executable}
    out = subprocess.run(["bash", str(REPO / "scripts" / "train_ray.sh"), "nope.yaml"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "config file not found: nope.yaml" in out.stderr
    assert "Traceback" not in out.stderr and "ray start" not in out.stdout


def test_ray_engine_rejects_a_train_set_smaller_than_one_step(tmp_path, capsys):
    cfg = _geo_config(tmp_path, "rollout.prompts_per_step=50", "train.batch_size=250")
    assert train_main(["--config", str(cfg), "--set", "engine=ray", "--dry-run"]) == 1
    assert "fewer than rollout.prompts_per_step (50)" in capsys.readouterr().err


def test_train_ray_script_join_prints_ray_start():
    out = _script("train_ray.sh", "--join", env_extra={"RAY_HEAD_ADDRESS": "10.0.0.1:6379", "NUM_GPUS": "4"})
    ray = str(Path(sys.executable).with_name("ray"))
    assert out.strip() == f"+ {ray} start --address 10.0.0.1:6379 --num-gpus 4"


def test_train_deepspeed_script_dry_run_prints_the_launcher_command():
    out = _script("train_deepspeed.sh", "configs/demo/geometry_tiny_cpu.yaml", "--resume", env_extra={"NUM_GPUS": "2"})
    assert "--num_gpus 2" in out and "--module riskpo_mm.engine.train --config configs/demo/geometry_tiny_cpu.yaml" in out
    assert out.rstrip().endswith("--set engine=local --resume")
