"""`riskpo-mm train` before it trains: run folders, --resume against the saved config, dry runs,
missing models, the start-up summary, wall time over resumed segments, metric timestamps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from riskpo_mm.engine import train as train_mod
from riskpo_mm.metrics_log import MetricsLogger, WallClock, earlier_wall_s
from riskpo_mm.engine.train import main as train_main

REPO = Path(__file__).resolve().parents[1]


def _record(i: int, **kw) -> str:
    return json.dumps({"id": f"r{i}", "task": "math", "prompt": f"{i} + 1?", "answer": str(i + 1), **kw}) + "\n"


@pytest.fixture
def setup(tmp_path):
    """A config with a real model folder (config.json only) and 10 math records; training is stubbed."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", "vision_config": {}}))
    data = tmp_path / "train.jsonl"
    data.write_text("".join(_record(i) for i in range(10)))
    raw = {"name": "mine", "output_dir": str(tmp_path / "runs" / "{name}"), "model": {"path": str(model)},
           "data": {"train": str(data)}, "rollout": {"prompts_per_step": 5, "n_samples_per_prompt": 8},
           "train": {"steps": 20}}
    cfg = tmp_path / "mine.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    return tmp_path, cfg, raw


@pytest.fixture
def no_training(monkeypatch):
    calls = []
    monkeypatch.setattr(train_mod, "_run", lambda cfg, args: calls.append(cfg) or 0)
    return calls


def _earlier_run(run: Path, raw: dict) -> None:
    (run / "checkpoints" / "step_000010").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    from riskpo_mm.config import validate_config

    (run / "config.yaml").write_text(validate_config(raw).to_yaml())


def test_rerun_into_an_existing_run_folder_refuses_without_overwrite(setup, no_training, capsys):
    tmp, cfg, raw = setup
    run = tmp / "runs" / "mine"
    _earlier_run(run, raw)
    assert train_main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"the run folder {run} already holds a run (metrics.jsonl, checkpoints/)" in err
    assert "--resume" in err and "--overwrite" in err and not no_training
    assert (run / "metrics.jsonl").read_text() == '{"step": 1}\n'  # untouched


def test_overwrite_moves_the_earlier_run_aside_and_says_so(setup, no_training, capsys):
    tmp, cfg, raw = setup
    run = tmp / "runs" / "mine"
    _earlier_run(run, raw)
    assert train_main(["--config", str(cfg), "--overwrite"]) == 0 and no_training
    moved = [p for p in (tmp / "runs").iterdir() if p.name.startswith("mine.old-")]
    assert len(moved) == 1 and (moved[0] / "metrics.jsonl").is_file() and (moved[0] / "checkpoints").is_dir()
    assert not (run / "metrics.jsonl").exists() and not (run / "checkpoints").exists()
    assert f"--overwrite: moved the earlier run {run} to {moved[0]}" in capsys.readouterr().out


def test_resume_refuses_config_changes_that_break_the_saved_state_naming_the_keys(setup, no_training, capsys):
    tmp, cfg, raw = setup
    _earlier_run(tmp / "runs" / "mine", raw)
    argv = ["--config", str(cfg), "--resume", "--set", "algorithm.riskpo.alpha=0.1",
            "--set", "rollout.n_samples_per_prompt=16", "--set", "train.steps=40"]
    assert train_main(argv) == 2 and not no_training
    out = capsys.readouterr()
    assert "algorithm.riskpo.alpha: 0.2 -> 0.1  (refused: breaks the saved state)" in out.out
    assert "rollout.n_samples_per_prompt: 8 -> 16  (refused" in out.out and "train.steps: 20 -> 40  (safe)" in out.out
    assert "--resume with changed rollout.n_samples_per_prompt, algorithm.riskpo.alpha:" in out.err
    assert "Traceback" not in out.err


def test_resume_allows_safe_config_changes_and_reports_them(setup, no_training, capsys):
    tmp, cfg, raw = setup
    _earlier_run(tmp / "runs" / "mine", raw)
    assert train_main(["--config", str(cfg), "--resume", "--set", "train.steps=40",
                       "--set", "checkpoint.every_steps=5"]) == 0
    assert no_training[0].train.steps == 40
    out = capsys.readouterr().out
    assert "train.steps: 20 -> 40  (safe)" in out and "checkpoint.every_steps: 10 -> 5  (safe)" in out


def test_dry_run_reports_every_problem_at_once_and_writes_nothing(tmp_path, capsys):
    data = tmp_path / "test.jsonl"
    data.write_text(_record(0, task="maths") + _record(1, prompt="<image> what?"))
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"name": "x", "output_dir": str(tmp_path / "runs/{name}"),
                                   "model": {"path": str(tmp_path / "models" / "nope")},
                                   "data": {"train": str(tmp_path / "missing.jsonl"), "test": str(data)},
                                   "rollout": {"prompts_per_step": 5}}))
    before = sorted(tmp_path.rglob("*"))
    assert train_main(["--config", str(cfg), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--dry-run found 4 problem(s)" in err and "Traceback" not in err
    assert f"model.path: the folder {tmp_path / 'models' / 'nope'} does not exist" in err
    assert f"data.train[0].path: {tmp_path / 'missing.jsonl'} does not exist" in err
    assert "unknown task 'maths'; did you mean 'math'?" in err and "1 <image> placeholders but 0 images" in err
    assert sorted(tmp_path.rglob("*")) == before


def test_dry_run_of_the_demo_builds_nothing_and_says_what_would_be_built(tmp_path, capsys):
    demo = REPO / "configs" / "demo" / "geometry_tiny_cpu.yaml"
    sets = [f"output_dir={tmp_path}/{{name}}", f"data.synthetic.dir={tmp_path}/geo", f"model.path={tmp_path}/tiny"]
    for engine in ("local", "ray"):
        argv = ["--config", str(demo), "--dry-run", "--set", f"engine={engine}"]
        assert train_main(argv + [a for s in sets for a in ("--set", s)]) == 0
        out = capsys.readouterr().out
        assert f"would be built: a tiny random qwen2_5_vl model (size s) at model.path {tmp_path}/tiny" in out
        assert f"would be built: the synthetic geometry set (2400 records, levels [0])" in out
        assert "nothing was written" in out
    assert list(tmp_path.iterdir()) == []


def test_dry_run_flags_a_text_only_model_on_image_records(setup, capsys):
    tmp, cfg, raw = setup
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp / "a.png")
    (tmp / "train.jsonl").write_text("".join(_record(i, prompt="<image> what?", images=["a.png"]) for i in range(5)))
    (tmp / "model" / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    assert train_main(["--config", str(cfg), "--dry-run"]) == 2
    assert "record 'r0' has images but model.path" in capsys.readouterr().err


def test_a_missing_model_folder_is_named_before_anything_starts(setup, no_training, capsys):
    tmp, cfg, raw = setup
    assert train_main(["--config", str(cfg), "--set", f"model.path={tmp}/models/qwen/final"]) == 2
    err = capsys.readouterr().err
    assert f"model.path: the folder {tmp}/models/qwen/final does not exist" in err and "Repo id" not in err
    assert not no_training and not (tmp / "runs").exists()


def test_start_prints_a_short_summary_not_the_resolved_config(setup, no_training, capsys):
    tmp, cfg, raw = setup
    assert train_main(["--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"[riskpo-mm] run mine: engine local, run folder {tmp}/runs/mine")
    assert "10 records" in out and "riskpo (preset riskpo); 20 steps x 5 prompts x 8 samples" in out
    assert len(out.splitlines()) <= 6 and "# resolved config" not in out


def test_metrics_rows_carry_a_unix_time_and_plain_progress_lines_off_a_terminal(tmp_path, monkeypatch, capsys):
    import time

    monkeypatch.setenv("RISKPO_MM_PROGRESS_EVERY", "2")
    log = MetricsLogger(tmp_path, tensorboard=False, config={"train": {"steps": 4}})
    for step in (1, 2, 3):
        log.log(step, {"reward/mean": 0.5, "entropy": 1.0})
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(abs(r["time"] - time.time()) < 60 for r in rows)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines] == ["1/4", "2/4"] and "reward 0.500" in lines[0]


def test_report_wall_time_after_a_resume_adds_the_earlier_segments(tmp_path):
    first = WallClock(tmp_path, resume=False)
    first.t0 -= 100
    first.stop()
    second = WallClock(tmp_path, resume=True)
    second.t0 -= 20
    second.start()
    second.stop()
    assert earlier_wall_s(tmp_path) == pytest.approx(100, abs=1)
    assert json.loads((tmp_path / "wall_time.json").read_text())["total_s"] == pytest.approx(120, abs=1)
    from riskpo_mm.config import validate_config

    cfg = validate_config({"name": "w", "output_dir": str(tmp_path), "model": {"path": "m"}, "data": {"train": "x"}})
    report = train_mod.write_report(cfg, None, None, {}, 20.0, {})
    assert report["wall_s"] == pytest.approx(120, abs=1) and report["wall_this_segment_s"] == 20.0
