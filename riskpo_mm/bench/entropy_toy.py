"""Entropy toy: tabular softmax policy trained with GRPO vs RiskPO (tracked / bundle quantiles, hard-math recipe).

    python -m riskpo_mm.bench.entropy_toy [--steps 400] [--seeds 3] [--json PATH]

Q questions with K candidate answers each, one correct; a fraction are hard (the correct answer starts
unlikely). Each step samples P questions x n answers, rewards 1 for the correct one, computes
advantages with the named estimator and takes a REINFORCE step on the logits:
theta_q += lr * mean_i A_i (onehot(a_i) - pi_q). Every method sees the same sample budget and
learning rate. Printed: mean policy entropy, mean accuracy (expected pass@1) and exact pass@16,
averaged over questions and seeds. Nothing here is tuned toward a method.
"""

from __future__ import annotations

import argparse
import time

import torch

from riskpo_mm.algo import RiskPOConfig, build_estimator

METHODS = {
    "grpo": ("grpo", None),
    "riskpo_tracked": ("riskpo", RiskPOConfig(quantile_source="tracked")),
    "riskpo_bundle": ("riskpo", RiskPOConfig(quantile_source="bundle")),
    "riskpo_hard_math": ("riskpo", RiskPOConfig.preset("riskpo_authors_hard_math")),
}


def make_problem(q: int, k: int, hard_frac: float, g: torch.Generator) -> torch.Tensor:
    """Initial logits [Q, K]; answer 0 is correct, +2 on easy questions, -2 on hard ones."""
    logits = torch.randn(q, k, generator=g, dtype=torch.float64)
    hard = torch.rand(q, generator=g) < hard_frac
    logits[:, 0] += torch.where(hard, -2.0, 2.0).double()
    return logits


def stats(logits: torch.Tensor) -> tuple[float, float, float]:
    logp = torch.log_softmax(logits, -1)
    p_correct = logp[:, 0].exp()
    entropy = -(logp.exp() * logp).sum(-1).mean()
    pass16 = (1 - (1 - p_correct) ** 16).mean()
    return entropy.item(), p_correct.mean().item(), pass16.item()


def train(method: str, seed: int, args: argparse.Namespace, report_at: list[int]) -> list[tuple[float, float, float]]:
    name, cfg = METHODS[method]
    g = torch.Generator().manual_seed(seed)
    logits = make_problem(args.questions, args.answers, args.hard_frac, g)
    est = build_estimator(name, cfg if name == "riskpo" else None, seed=seed)
    sampler = torch.Generator().manual_seed(10_000 + seed)
    rows = []
    for step in range(args.steps + 1):
        if step in report_at:
            rows.append(stats(logits))
        if step == args.steps:
            break
        qs = torch.randperm(args.questions, generator=sampler)[: args.prompts]  # [P]
        probs = torch.softmax(logits[qs], -1)  # [P, K]
        answers = torch.multinomial(probs, args.n, replacement=True, generator=sampler)  # [P, n]
        rewards = (answers == 0).double()
        adv = est.advantages(rewards)  # [P, n]
        onehot = torch.nn.functional.one_hot(answers, args.answers).double()  # [P, n, K]
        grad = (adv[..., None] * (onehot - probs[:, None, :])).mean(1)  # [P, K]
        logits.index_add_(0, qs, args.lr * grad)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m riskpo_mm.bench.entropy_toy", description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--answers", type=int, default=8)
    parser.add_argument("--hard-frac", type=float, default=0.3)
    parser.add_argument("--prompts", type=int, default=40, help="questions per step (multiple of the bundle size 5)")
    parser.add_argument("--n", type=int, default=8, help="samples per question")
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the curves as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    report_at = sorted({0, args.steps // 8, args.steps // 4, args.steps // 2, 3 * args.steps // 4, args.steps})
    t0 = time.perf_counter()
    results = {}
    for method in METHODS:
        runs = [train(method, seed, args, report_at) for seed in range(args.seeds)]
        results[method] = [tuple(sum(r[i][j] for r in runs) / len(runs) for j in range(3)) for i in range(len(report_at))]
    print(
        f"entropy toy: {args.questions} questions x {args.answers} answers ({args.hard_frac:.0%} hard), "
        f"{args.prompts} questions x {args.n} samples/step, lr {args.lr}, mean of {args.seeds} seeds"
    )
    header = f"{'step':>5} " + " ".join(f"{m + ' H/acc/p@16':>29}" for m in METHODS)
    print(header)
    for i, step in enumerate(report_at):
        cells = " ".join(f"{h:>9.3f} {a:>9.3f} {p:>9.3f}" for h, a, p in (results[m][i] for m in METHODS))
        print(f"{step:>5} {cells}")
    final = {m: results[m][-1] for m in METHODS}
    base = final["grpo"]
    for m in METHODS:
        if m != "grpo":
            h, a, p = final[m]
            print(f"final {m} vs grpo: entropy {h / base[0]:.2f}x, accuracy {a - base[1]:+.3f}, pass@16 {p - base[2]:+.3f}")
    print(f"({time.perf_counter() - t0:.1f} s)")
    if args.json:
        import json

        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"bench": "entropy_toy", "steps": report_at,
                       "methods": {m: [dict(zip(("entropy", "accuracy", "pass@16"), row)) for row in results[m]]
                                   for m in METHODS}}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
