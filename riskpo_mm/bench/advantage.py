"""Vectorised RiskPO estimator vs the slow loop reference (tests/algo_reference.py).

    python -m riskpo_mm.bench.advantage [--sizes 64 512 1024 4096] [--n 8] [--bundle 5] [--json PATH]

Both run the paper-default config (tracked quantiles, random pairing; the reference is fed the
estimator's permutations) on 0/1 rewards, one thread. Prints median times, the ratio and the
estimator's cost per prompt (for the scaling in P); GRPO is shown for scale. `pair ms` times the
random pairing alone (a float64 key per response, argsort per prompt): no estimator that draws
the spec's permutations this way can beat the reference by more than `ref/pair`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from riskpo_mm.algo import GRPOEstimator, RiskPOConfig, RiskPOEstimator


def load_reference():
    tests = Path(__file__).resolve().parents[2] / "tests"
    if not (tests / "algo_reference.py").is_file():
        raise SystemExit(f"loop reference not found at {tests / 'algo_reference.py'} (run from a source checkout)")
    sys.path.insert(0, str(tests))
    from algo_reference import reference_advantages

    return reference_advantages


def timed(fn, reps: int) -> float:
    """Median wall time of `fn()` in seconds over `reps` runs after one warm-up."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m riskpo_mm.bench.advantage", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512, 1024, 4096])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--bundle", type=int, default=5)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    reference = load_reference()
    cfg = RiskPOConfig(bundle_size=args.bundle)
    print(f"RiskPO advantages, n={args.n}, B={args.bundle}, tracked/random, float64, CPU 1 thread")
    header = f"{'P':>6} {'estimator ms':>13} {'reference ms':>13} {'ratio':>7} {'est us/prompt':>14} {'grpo ms':>8}"
    print(header + f" {'pair ms':>8} {'ref/pair':>9}")
    rows = []
    for p in args.sizes:
        g = torch.Generator().manual_seed(p)
        rewards = (torch.rand(p, args.n, generator=g) < 0.5).double()
        est = RiskPOEstimator(cfg, seed=0)
        t_est = timed(lambda: est.advantages(rewards), reps=30)
        orders, rows = est.last_order.tolist(), rewards.tolist()
        t_ref = timed(lambda: reference(rows, cfg, orders=orders, trackers={}), reps=3 if p > 1024 else 10)
        grpo = GRPOEstimator()
        t_grpo = timed(lambda: grpo.advantages(rewards), reps=30)
        keys = torch.Generator().manual_seed(0)
        t_pair = timed(lambda: torch.rand(p, args.n, generator=keys, dtype=torch.float64).argsort(dim=1), reps=30)
        print(
            f"{p:>6} {t_est * 1e3:>13.3f} {t_ref * 1e3:>13.2f} {t_ref / t_est:>6.1f}x {t_est / p * 1e6:>14.2f}"
            f" {t_grpo * 1e3:>8.3f} {t_pair * 1e3:>8.3f} {t_ref / t_pair:>8.0f}x"
        )
        rows.append({"P": p, "n": args.n, "bundle": args.bundle, "estimator_ms": t_est * 1e3, "reference_ms": t_ref * 1e3,
                     "ratio": t_ref / t_est, "grpo_ms": t_grpo * 1e3, "pair_ms": t_pair * 1e3})
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"bench": "advantage", "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
