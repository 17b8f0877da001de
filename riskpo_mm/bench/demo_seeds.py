"""The CPU demo over seeds, from one warm start: does RL's gain hold?

    python -m riskpo_mm.bench.demo_seeds [--seeds 0 1 2 3 4] [--grpo-seeds 0] [--out runs/demo_seeds]
                                         [--reuse] [--json PATH]

Runs `riskpo-mm train` on configs/demo/geometry_tiny_cpu.yaml (RiskPO) and, for `--grpo-seeds`,
configs/demo/geometry_tiny_cpu_grpo.yaml, with `--set seed=K`. Those configs fix `sft.seed`, so
every run starts from the same warm start: it is trained by the first run and copied into the
others (the cache key matches). Seeds vary RL only: pairing RNG, sampling, data order.

Prints, per run, held-out pass@1 and pass@8 before and after RL with their 95% bootstrap
intervals (over problems), the mean and std over seeds, and the demo's claim per run: pass@1
gains at least 0.05, and pass@8 does not fall beyond the intervals (the upper end of the interval
after RL reaches the lower end of the warm start's).
`--reuse` keeps runs whose report.json exists. `riskpo-mm compare <out>/*` shows the same runs
side by side.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"riskpo": ROOT / "configs" / "demo" / "geometry_tiny_cpu.yaml",
           "grpo": ROOT / "configs" / "demo" / "geometry_tiny_cpu_grpo.yaml"}
MIN_GAIN = 0.05


def run_one(estimator: str, seed: int, out: Path, warm_start: Path | None, reuse: bool) -> Path:
    """One demo run in `out/<estimator>_s<seed>`; returns its folder."""
    name = f"{estimator}_s{seed}"
    run = out / name
    if reuse and (run / "report.json").is_file():
        return run
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    if warm_start is not None and (warm_start / "sft_done.json").is_file():
        shutil.copytree(warm_start, run / "sft_model")
    cmd = [sys.executable, "-m", "riskpo_mm.cli", "train", "--config", str(CONFIGS[estimator]), "--set", f"name={name}",
           "--set", f"output_dir={out}/{{name}}", "--set", f"seed={seed}"]
    print(f"[demo_seeds] {' '.join(cmd[2:])}", flush=True)
    with open(run.parent / f"{name}.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"[demo_seeds] {name} failed (exit {proc.returncode}); see {run.parent / (name + '.log')}")
    return run


def summarise(run: Path) -> dict[str, Any]:
    """pass@1 / pass@8 before and after RL with bootstrap intervals, and the claim check."""
    report = json.loads((run / "report.json").read_text())
    ci = {ph: json.loads((run / f"eval_{ph}.json").read_text())["ci"]["all"] for ph in ("before", "after")}
    row: dict[str, Any] = {"run": run.name, "estimator": report["estimator"], "seed": report["config"]["seed"],
                           "rl_s": report["phases_s"].get("rl_s")}
    for ph, key in (("before", "before_rl"), ("after", "after_rl")):
        for k in ("pass@1", "pass@8", "maj@8", "entropy", "format_rate"):
            row[f"{ph}/{k}"] = report[key][k]
        for k in ("pass@1", "pass@8"):
            row[f"{ph}/{k}_ci"] = ci[ph][k]
    row["gain/pass@1"] = row["after/pass@1"] - row["before/pass@1"]
    row["gain/pass@8"] = row["after/pass@8"] - row["before/pass@8"]
    # pass@8 may not fall beyond the intervals: after RL's upper end reaches the warm start's lower end
    row["holds"] = row["gain/pass@1"] >= MIN_GAIN and row["after/pass@8_ci"][1] >= row["before/pass@8_ci"][0]
    return row


def _ci(v: list[float]) -> str:
    return f"[{v[0]:.3f}, {v[1]:.3f}]"


def render(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'run':<12} {'pass@1 before':>22} {'pass@1 after':>22} {'gain':>7} {'pass@8 before':>22} "
             f"{'pass@8 after':>22} {'holds':>6}"]
    for r in rows:
        lines.append(f"{r['run']:<12} {r['before/pass@1']:.3f} {_ci(r['before/pass@1_ci']):>16} "
                     f"{r['after/pass@1']:.3f} {_ci(r['after/pass@1_ci']):>16} {r['gain/pass@1']:>+7.3f} "
                     f"{r['before/pass@8']:.3f} {_ci(r['before/pass@8_ci']):>16} "
                     f"{r['after/pass@8']:.3f} {_ci(r['after/pass@8_ci']):>16} {'yes' if r['holds'] else 'NO':>6}")
    for est in sorted({r["estimator"] for r in rows}):
        mine = [r for r in rows if r["estimator"] == est]
        lines.append(f"{est} over {len(mine)} seed(s): " + ", ".join(
            f"{k} {statistics.mean(r[k] for r in mine):.3f} +- {statistics.pstdev(r[k] for r in mine):.3f}"
            for k in ("after/pass@1", "gain/pass@1", "after/pass@8", "after/entropy"))
            + f"; claim holds in {sum(r['holds'] for r in mine)} of {len(mine)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m riskpo_mm.bench.demo_seeds", description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="RiskPO seeds")
    ap.add_argument("--grpo-seeds", type=int, nargs="*", default=[0], help="GRPO seeds (none: skip GRPO)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "demo_seeds"))
    ap.add_argument("--reuse", action="store_true", help="keep runs whose report.json exists")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    runs, warm = [], None
    for est, seeds in (("riskpo", args.seeds), ("grpo", args.grpo_seeds)):
        for seed in seeds:
            run = run_one(est, seed, out, warm, args.reuse)
            warm = warm or run / "sft_model"
            runs.append(run)
    rows = [summarise(r) for r in runs]
    print(render(rows))
    print(f"({time.time() - t0:.0f} s; warm start shared: {warm})")
    if args.json:
        Path(args.json).write_text(json.dumps({"bench": "demo_seeds", "min_gain": MIN_GAIN, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
