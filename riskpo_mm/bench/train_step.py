"""Local-engine step time on both rollout backends (HF generate, colocated vLLM), RiskPO vs GRPO.

    python -m riskpo_mm.bench.train_step [--steps 4] [--size s] [--prompts 20] [--n 8] [--tokens 40]
                                         [--backends hf,vllm] [--json PATH]

The default batch is the demo's (20 prompts x 8 samples x 40 new tokens, tiny Qwen2.5-VL, synthetic
geometry at 112 px). Each (backend, estimator) pair gets a fresh trainer from the same random model;
the first step (allocator, DeepSpeed and engine warm-up) is excluded and the median of the rest is
reported. Phases: generate / reward / advantage / experience / train / weight_sync (vLLM only).
Generated lengths differ between runs once policies diverge, so step ratios carry rollout noise;
the advantage phase is the estimator's own cost. Rollout tokens/s = generated tokens / generate time.

JSON: ``backends.<hf|vllm|vllm:bfloat16>.{rollout_tok_s, step_s, phases_s, riskpo_over_grpo}``,
``rollout_speedup`` (vLLM in the training dtype over HF rollout tokens/s, measured in the same run) and
``rollout_speedup_bf16`` (the bf16 sampler over HF).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from riskpo_mm.config import validate_config

PHASES = ("generate", "reward", "advantage", "experience", "train", "weight_sync", "step")


def bench_config(root: Path, backend: str, estimator: str, args) -> dict:
    backend, _, dtype = backend.partition(":")  # "vllm:bfloat16": the sampler in bf16, training in float32
    return {
        "name": f"bench_{backend}{dtype}_{estimator}",
        "output_dir": str(root / "{name}"),
        "model": {"path": str(root / "model"), "tiny": {"family": "qwen2_5_vl", "size": args.size, "tokenizer": "compact"}},
        "data": {"synthetic": {"dir": str(root / "data"), "n": 200, "seed": 0, "size": 112}, "max_pixels": 12544},
        "rollout": {"prompts_per_step": args.prompts, "n_samples_per_prompt": args.n, "max_new_tokens": args.tokens,
                    "backend": backend, **({"vllm_dtype": dtype} if dtype else {})},
        "algorithm": {"estimator": estimator},
        "train": {"steps": args.steps + 1, "lr": 1e-5, "micro_batch_size": args.n},
        "eval": {"before_and_after": False},
        "checkpoint": {"every_steps": 0},
        "logging": {"tensorboard": False},
    }


def run(backend: str, estimator: str, root: Path, args) -> dict[str, float]:
    from riskpo_mm.engine.local import LocalTrainer

    trainer = LocalTrainer(validate_config(bench_config(root, backend, estimator, args)), log=False)
    trainer.train_step()  # warm-up
    rows = [trainer.train_step() for _ in range(args.steps)]
    trainer.close()
    out = {p: statistics.median(r.get(f"time/{p}", 0.0) for r in rows) for p in PHASES}
    out["rollout_tok_s"] = statistics.median(
        r["response_length/mean"] * args.prompts * args.n / r["time/generate"] for r in rows)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m riskpo_mm.bench.train_step", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", default="s", choices=["xs", "s", "m"])
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--backends", default="hf,vllm,vllm:bfloat16",
                        help="hf, vllm (sampler in the training dtype), vllm:bfloat16 (sampler in bf16)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    backends = [b for b in args.backends.split(",") if b]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        times = {b: {est: run(b, est, root, args) for est in ("riskpo", "grpo")} for b in backends}
    print(f"local engine, tiny qwen2_5_vl-{args.size}, {args.prompts} prompts x {args.n} samples x {args.tokens} tokens, "
          f"{torch.get_num_threads()} threads; median of {args.steps} steps (s)")
    out: dict = {"batch": {"prompts": args.prompts, "n": args.n, "tokens": args.tokens, "size": args.size},
                 "backends": {}}
    for b in backends:
        r_, g_ = times[b]["riskpo"], times[b]["grpo"]
        print(f"\n[{b}] {'phase':<11} {'riskpo':>9} {'grpo':>9} {'ratio':>7}")
        for p in PHASES:
            r, g = r_[p], g_[p]
            print(f"[{b}] {p:<11} {r:>9.4f} {g:>9.4f} {r / g if g else float('nan'):>7.3f}")
        print(f"[{b}] rollout tokens/s {r_['rollout_tok_s']:.0f} (GRPO run {g_['rollout_tok_s']:.0f})")
        out["backends"][b] = {"rollout_tok_s": r_["rollout_tok_s"], "step_s": r_["step"],
                              "phases_s": {p: r_[p] for p in PHASES if p != "step"},
                              "riskpo_over_grpo": r_["step"] / g_["step"], "grpo": g_}
    if {"hf", "vllm"} <= set(backends):
        out["rollout_speedup"] = out["backends"]["vllm"]["rollout_tok_s"] / out["backends"]["hf"]["rollout_tok_s"]
        print(f"\nrollout speedup vLLM / HF: {out['rollout_speedup']:.1f}x")
    if {"hf", "vllm:bfloat16"} <= set(backends):
        out["rollout_speedup_bf16"] = (out["backends"]["vllm:bfloat16"]["rollout_tok_s"]
                                       / out["backends"]["hf"]["rollout_tok_s"])
        print(f"rollout speedup vLLM (bf16 sampler) / HF: {out['rollout_speedup_bf16']:.1f}x")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
