"""Local-engine step time, RiskPO vs GRPO on the same tiny model and data.

    python -m riskpo_mm.bench.train_step [--steps 4] [--size s] [--prompts 10] [--n 8] [--tokens 32]

Each estimator gets a fresh trainer from the same random model; the first step
(allocator and DeepSpeed warm-up) is excluded. Prints the time split into
generate / reward / advantage / experience / train and the RiskPO / GRPO ratio
of the whole step and of the advantage phase. Generated lengths differ between
the two runs once their policies diverge, so the step ratio carries rollout
noise; the advantage phase is the estimator's own cost.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from riskpo_mm.config import validate_config

PHASES = ("generate", "reward", "advantage", "experience", "train", "step")


def bench_config(root: Path, estimator: str, args) -> dict:
    return {
        "name": f"bench_{estimator}",
        "output_dir": str(root / "{name}"),
        "model": {"path": str(root / "model"), "tiny": {"family": "qwen2_5_vl", "size": args.size, "tokenizer": "compact"}},
        "data": {"synthetic": {"dir": str(root / "data"), "n": 200, "seed": 0, "size": 112}, "max_pixels": 12544},
        "rollout": {"prompts_per_step": args.prompts, "n_samples_per_prompt": args.n, "max_new_tokens": args.tokens},
        "algorithm": {"estimator": estimator},
        "train": {"steps": args.steps + 1, "lr": 1e-5, "micro_batch_size": args.n},
        "eval": {"before_and_after": False},
        "checkpoint": {"every_steps": 0},
        "logging": {"tensorboard": False},
    }


def run(estimator: str, root: Path, args) -> dict[str, float]:
    from riskpo_mm.engine.local import LocalTrainer

    trainer = LocalTrainer(validate_config(bench_config(root, estimator, args)), log=False)
    trainer.train_step()  # warm-up
    rows = [trainer.train_step() for _ in range(args.steps)]
    trainer.close()
    return {p: statistics.median(r.get(f"time/{p}", 0.0) for r in rows) for p in PHASES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m riskpo_mm.bench.train_step", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", default="s", choices=["xs", "s", "m"])
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        times = {est: run(est, root, args) for est in ("riskpo", "grpo")}
    print(f"local engine, tiny qwen2_5_vl-{args.size}, {args.prompts} prompts x {args.n} samples x {args.tokens} tokens, "
          f"{torch.get_num_threads()} threads; median of {args.steps} steps (s)")
    print(f"{'phase':<11} {'riskpo':>9} {'grpo':>9} {'ratio':>7}")
    for p in PHASES:
        r, g = times["riskpo"][p], times["grpo"][p]
        print(f"{p:<11} {r:>9.4f} {g:>9.4f} {r / g if g else float('nan'):>7.3f}")
    extra = times["riskpo"]["advantage"] - times["grpo"]["advantage"]
    print(f"RiskPO estimator overhead: {1e3 * extra:.2f} ms per step = {100 * extra / times['grpo']['step']:.2f}% of the GRPO step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
