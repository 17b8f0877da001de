"""`riskpo-mm compare` on fake run folders and results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from riskpo_mm.eval.compare import build_table, load_rows, main
from riskpo_mm.eval.harness import SCHEMA


def problems(accuracy_rows):
    return [{"id": str(i), "accuracy": row} for i, row in enumerate(accuracy_rows)]


def write_run(root: Path, name: str, before: dict, after: dict, *, final_entropy=None, bundle_cvar=None,
              metrics_lines=(), eval_after=None) -> Path:
    run = root / name
    run.mkdir()
    report = {"name": name, "before_rl": before, "after_rl": after, "wall_s": 321.4, "config": {"name": name},
              "train": {"final_entropy": final_entropy, "bundle_cvar": bundle_cvar}}
    (run / "report.json").write_text(json.dumps(report))
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics_lines))
    if eval_after is not None:
        (run / "eval_after.json").write_text(json.dumps({"schema": SCHEMA, "metrics": {"all": after}, "problems": eval_after}))
    return run


@pytest.fixture
def two_runs(tmp_path):
    riskpo = write_run(
        tmp_path, "demo_riskpo", {"pass@1": 0.10, "pass@4": 0.30, "maj@4": 0.12, "format_rate": 0.9},
        {"pass@1": 0.25, "pass@2": 0.40, "pass@4": 0.55, "maj@4": 0.3, "format_rate": 0.97},
        final_entropy=0.812, bundle_cvar=1.25,
        eval_after=problems([[1, 0, 1, 0]] * 5 + [[0, 0, 0, 0]] * 5),
    )
    grpo = write_run(
        tmp_path, "demo_grpo", {"pass@1": 0.10, "pass@4": 0.30}, {"pass@1": 0.22, "pass@4": 0.41},
        metrics_lines=[{"step": 1, "entropy": 0.9}, {"step": 2, "entropy": 0.45, "riskpo/bundle_score/cvar": 0.75}],
    )
    return riskpo, grpo


def test_compare_prints_before_and_after_rows_side_by_side(two_runs, capsys):
    assert main([str(p) for p in two_runs]) == 0
    out = capsys.readouterr().out
    table, notes = out.split("\n\n")
    lines = table.splitlines()
    header = lines[0].split()
    assert header == ["run", "pass@1", "pass@2", "pass@4", "maj@4", "ci95(pass@1)", "ci95(pass@4)", "format", "entropy",
                      "cvar(train)", "cvar0.2(eval)",
                      "wall"]
    rows = {line.split()[0] + (" " + line.split()[1] if "(before" in line else ""): line.split() for line in lines[2:]}
    after = rows["demo_riskpo"]
    assert after[1:] == ["0.250", "0.400", "0.550", "0.300", "-", "-", "0.970", "0.812", "1.250", "0.000", "321s"]
    before = next(v for k, v in rows.items() if k.startswith("demo_riskpo (before"))
    assert before[3:] == ["0.100", "-", "0.300", "0.120", "-", "-", "0.900", "-", "-", "-", "-"]
    grpo = rows["demo_grpo"]
    # Missing fields fall back to the last values of metrics.jsonl, else "-".
    assert grpo[1:] == ["0.220", "-", "0.410", "-", "-", "-", "-", "0.450", "0.750", "-", "321s"]


def test_compare_recomputes_held_out_cvar_with_one_bundle_size(two_runs):
    rows = load_rows(two_runs[0], bundle_size=5, alpha=0.5)
    # Bundles of 5 problems: papers score [5, 0, 5, 0] (first bundle), [0, 0, 0, 0] (second).
    assert rows[-1]["cvar_eval"] == pytest.approx(0.0)
    rows = load_rows(two_runs[0], bundle_size=10, alpha=0.5)
    assert rows[-1]["cvar_eval"] == pytest.approx(0.0)  # scores [5, 0, 5, 0]: lower half is 0


def test_compare_reads_eval_results_files(tmp_path, capsys):
    results = {"schema": SCHEMA, "wall_s": 12.0, "metrics": {"all": {"pass@1": 0.5, "pass@8": 0.875, "avg@8": 0.5,
                                                                     "maj@8": 0.5, "format_rate": 1.0}},
               "problems": problems([[1, 0] * 4] * 5)}
    path = tmp_path / "model_a.json"
    path.write_text(json.dumps(results))
    assert main([str(path)]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row == ["model_a", "0.500", "0.875", "0.500", "-", "-", "1.000", "-", "-", "0.000", "12s"]  # no intervals kept
    table = build_table(load_rows(path))
    assert table[0][2] == "pass@8"


def test_compare_rejects_unknown_paths_clearly(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "needs report.json" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    assert main([str(other)]) == 2
    assert "neither a results file" in capsys.readouterr().err


def test_compare_says_why_a_cvar_is_missing(two_runs, capsys):
    assert main([str(p) for p in two_runs]) == 0
    notes = capsys.readouterr().out.split("missing values:")[1]
    assert "demo_grpo: cvar0.2(eval) -: no eval_after.json (per-problem outcomes)" in notes
    assert "demo_riskpo (before RL): cvar0.2(eval) -: no eval_before.json" in notes


def test_compare_adds_per_task_rows_for_mixed_results(tmp_path, capsys):
    groups = {"all": {"pass@1": 0.5, "maj@4": 0.5}, "task/math": {"pass@1": 0.75, "maj@4": 1.0},
              "task/geometry": {"pass@1": 0.25, "maj@4": 0.0}}
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps({"schema": SCHEMA, "wall_s": 1.0, "metrics": groups, "problems": []}))
    assert main([str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].split()[:3] == ["mixed", "[geometry]", "0.250"] and lines[4].split()[:3] == ["mixed", "[math]", "0.750"]


def test_compare_json_into_head_does_not_crash(two_runs):
    import subprocess
    import sys

    paths = " ".join(map(str, two_runs * 300))  # far more than a pipe buffer of JSON
    cmd = f"{sys.executable} -m riskpo_mm.cli compare --json {paths} | head -n 2"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert "BrokenPipeError" not in out.stderr and "Traceback" not in out.stderr and len(out.stdout.splitlines()) == 2


def test_compare_shows_each_runs_bootstrap_intervals_from_its_eval_files(tmp_path, capsys):
    results = {"schema": SCHEMA, "metrics": {"all": {"pass@1": 0.5, "pass@8": 0.875}},
               "ci": {"all": {"pass@1": [0.41, 0.59], "pass@8": [0.8, 0.95]}}}
    path = tmp_path / "model_b.json"
    path.write_text(json.dumps(results))
    assert main([str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[3:5] == ["ci95(pass@1)", "ci95(pass@8)"]
    assert lines[2].split()[3:5] == ["[0.410,0.590]", "[0.800,0.950]"]
