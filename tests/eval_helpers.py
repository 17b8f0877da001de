"""Shared fixtures of the eval tests: one tiny model, a small synthetic geometry split, fake run folders."""

from __future__ import annotations

import json
from pathlib import Path

_CACHE: dict[str, Path] = {}


def tiny_model_dir(tmp_path_factory) -> Path:
    """A random xs Qwen2.5-VL with the compact tokenizer, built once per test session."""
    if "model" not in _CACHE:
        from riskpo_mm.models import make_tiny_model

        _CACHE["model"] = make_tiny_model("qwen2_5_vl", "xs", "compact", tmp_path_factory.mktemp("eval_model") / "model")
    return _CACHE["model"]


def geometry_test_file(tmp_path_factory) -> Path:
    """The held-out split of a small synthetic geometry set (riskpo-mm make-geometry), built once."""
    if "geometry" not in _CACHE:
        from riskpo_mm.data.synthetic import main as make_geometry

        out = tmp_path_factory.mktemp("eval_geometry") / "geometry"
        assert make_geometry(["--n", "60", "--seed", "0", "--out", str(out)]) in (0, None)
        _CACHE["geometry"] = out / "test.jsonl"
    return _CACHE["geometry"]


def write_fake_run(root: Path, name: str, model_dir: Path, estimator: str, steps: int = 4) -> Path:
    """A run folder as `riskpo-mm train` leaves it: final_model (a link to model_dir), metrics.jsonl,
    report.json. Training metrics are made up; the notebook only plots them."""
    run = root / name
    run.mkdir(parents=True)
    (run / "final_model").symlink_to(model_dir, target_is_directory=True)
    lines = []
    for step in range(1, steps + 1):
        row = {"step": step, "entropy": 1.0 - 0.1 * step, "reward/mean": 0.1 * step, "accuracy/mean": 0.1 * step}
        if estimator == "riskpo":
            row.update({f"riskpo/tracked/q@{u:g}": u * 5 + 0.1 * step for u in (0.05, 0.2, 0.5, 0.8, 0.95)})
            row.update({"riskpo/tracked/q_alpha": 1.0 + 0.1 * step, "riskpo/tracked/q_beta": 4.0,
                        "riskpo/batch/q_alpha": 1.0, "riskpo/batch/q_beta": 4.0, "riskpo/bundle_score/mean": 2.5,
                        "riskpo/bundle_score/cvar": 0.5 + 0.1 * step})
        lines.append(json.dumps(row))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    report = {"name": name, "estimator": estimator, "before_rl": {"pass@1": 0.0}, "after_rl": {"pass@1": 0.0},
              "wall_s": 1.0, "config": {"algorithm": {"estimator": estimator, "riskpo": {"bundle_size": 2, "alpha": 0.2}}},
              "train": {"final_entropy": 0.6, "bundle_cvar": None}}
    (run / "report.json").write_text(json.dumps(report))
    return run
