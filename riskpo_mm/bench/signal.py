"""Advantage signal: how much of each estimator's advantage follows the response's own outcome.

    python -m riskpo_mm.bench.signal [--prompts 20] [--n 8] [--steps 200] [--seeds 3] [--json PATH]

Rollouts are simulated from fixed per-question success probabilities p: half the questions are
learnable (p ~ Beta(4, 1.5)), half sit at chance (p = 0.2, five options), like the CPU demo's two
levels; the reward is 0.9 * correct + 0.1 (format met). For every estimator, over the steps after a
warm-up (trackers settle), printed:

- cos(A, c - p): cosine between the advantage vector [P, n] and the centred correctness c - p, the
  direction that raises every question's accuracy. A bundled estimator scores a response through its
  paper, whose other B - 1 rewards come from other questions, so part of A is noise from bundle-mates.
  The update direction's signal-to-noise ratio, and with it the samples needed for a given gain,
  scales with this number squared.
- mean share: the share of sum A^2 that is per-question means, which pushes every sampled response of
  a question up or down alike (sharpening, not learning which answer is right).
- max|A|/rms: the largest advantage against the batch's root mean square (heavy tails).

Nothing is trained; this measures the estimators, not a model.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from riskpo_mm.algo import RiskPOConfig, build_estimator

_NONE = dict(bundle_size=5, baseline="none")
METHODS: dict[str, tuple[str, RiskPOConfig | None]] = {
    "grpo": ("grpo", None),
    "riskpo (paper defaults)": ("riskpo", RiskPOConfig()),
    "riskpo, baseline none": ("riskpo", RiskPOConfig(**_NONE)),
    "riskpo, baseline none, bundle quantiles": ("riskpo", RiskPOConfig(**_NONE, quantile_source="bundle")),
    "riskpo, baseline none, B=2": ("riskpo", RiskPOConfig(bundle_size=2, baseline="none")),
    "riskpo, baseline none, B=1": ("riskpo", RiskPOConfig(bundle_size=1, baseline="none")),
    "riskpo_authors_easy_math": ("riskpo", RiskPOConfig.preset("riskpo_authors_easy_math")),
    "riskpo_authors_hard_math": ("riskpo", RiskPOConfig.preset("riskpo_authors_hard_math")),
    "riskpo (paper defaults), center prompt": ("riskpo", RiskPOConfig(center="prompt")),
    "riskpo_authors_hard_math, center prompt": ("riskpo", RiskPOConfig.preset("riskpo_authors_hard_math", center="prompt")),
}


def measure(kind: str, cfg: RiskPOConfig | None, args: argparse.Namespace, seed: int) -> tuple[float, float, float]:
    """Mean cos(A, c - p), mean share and median max|A|/rms over the post-warm-up steps."""
    g = torch.Generator().manual_seed(seed)
    est = build_estimator(kind, cfg if kind == "riskpo" else None, seed=seed)
    cos, share, tail = [], [], []
    for step in range(args.warmup + args.steps):
        learnable = torch.rand(args.prompts, generator=g) < 0.5  # [P]
        p = torch.where(learnable, beta_4_1p5(args.prompts, g), torch.tensor(0.2, dtype=torch.float64))  # [P]
        c = (torch.rand(args.prompts, args.n, generator=g, dtype=torch.float64) < p[:, None]).double()  # [P, n]
        adv = est.advantages(0.9 * c + 0.1).double()  # [P, n]
        if step < args.warmup:
            continue
        ideal = c - p[:, None]
        norm = adv.norm() * ideal.norm()
        energy = adv.pow(2).sum()
        if norm <= 1e-12 or energy <= 1e-12:
            continue
        cos.append((adv * ideal).sum() / norm)
        share.append(adv.mean(1).pow(2).sum() * args.n / energy)
        tail.append(adv.abs().max() / (energy / adv.numel()).sqrt())
    return torch.stack(cos).mean().item(), torch.stack(share).mean().item(), torch.stack(tail).median().item()


def beta_4_1p5(size: int, g: torch.Generator) -> torch.Tensor:
    """Seeded Beta(4, 1.5) draws [size] as X / (X + Y), X ~ Gamma(4), Y ~ Gamma(1.5) (torch's Beta takes no generator)."""
    x = -torch.log(torch.rand(size, 4, generator=g, dtype=torch.float64)).sum(1)  # sum of 4 Exp(1)
    z = torch.randn(size, generator=g, dtype=torch.float64)
    y = -torch.log(torch.rand(size, generator=g, dtype=torch.float64)) + 0.5 * z * z  # Exp(1) + Gamma(1/2)
    return x / (x + y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m riskpo_mm.bench.signal", description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=20, help="questions per step (a multiple of every bundle size)")
    parser.add_argument("--n", type=int, default=8, help="samples per question")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    print(f"advantage signal: {args.prompts} questions x {args.n} samples, {args.steps} steps, mean of {args.seeds} seeds")
    print(f"{'estimator':42s} {'cos(A, c-p)':>11s} {'vs grpo^2':>9s} {'mean share':>10s} {'max|A|/rms':>10s}")
    base = None
    rows = []
    for name, (kind, cfg) in METHODS.items():
        runs = [measure(kind, cfg, args, seed) for seed in range(args.seeds)]
        c, s, t = (sum(r[i] for r in runs) / len(runs) for i in range(3))
        base = c if base is None else base
        print(f"{name:42s} {c:>11.3f} {(c / base) ** 2:>9.2f} {s:>10.3f} {t:>10.1f}")
        rows.append({"estimator": name, "cos": c, "vs_grpo_sq": (c / base) ** 2, "mean_share": s, "max_over_rms": t})
    print(f"(vs grpo^2: the squared cosine ratio, roughly the sample efficiency against GRPO; {time.perf_counter() - t0:.1f} s)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"bench": "signal", "settings": vars(args) | {"json": None}, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
