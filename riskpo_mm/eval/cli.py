"""`riskpo-mm eval`: pass@k / avg@k / maj@n of a saved model on record files, into results.json.

    riskpo-mm eval --model DIR --data FILE [FILE ...] --n 16 --k 1,2,4,8,16 \
        [--temperature T] [--engine hf|vllm] [--max-new-tokens N] [--batch-size 8] \
        [--max-problems N] --out results.json

When --model is a run's model (`<run>/final_model`, `<run>/best_model`, `<run>/checkpoints/<step>/model`),
the run's `config.yaml` gives the flags not given: max new tokens (eval.max_new_tokens, else
rollout.max_new_tokens), temperature (eval.temperature), pixel limits (data.min_pixels / max_pixels) and
the system prompt (data.system_prompt). Each record's data source is its meta["source"], else the stem of its file. The vLLM engine needs
the `vllm` package (the `gpu` extra); the HF engine runs anywhere, CPU included.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from riskpo_mm.eval.harness import EvalResult, evaluate


class EvalError(ValueError):
    """A bad `riskpo-mm eval` argument or input; the message names the flag or file."""


def parse_ks(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]; anything else raises EvalError naming --k."""
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise EvalError(f"--k: expected comma-separated integers such as 1,2,4,8, got {text!r}") from None
    if not ks:
        raise EvalError(f"--k: expected at least one integer, got {text!r}")
    return ks


class _Help(argparse.HelpFormatter):
    """Every flag's help ends with its default (written out where it depends on the run)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or action.option_strings == ["-h", "--help"]:
            return text
        if isinstance(action.default, bool):
            return text
        return f"{text} (default: %(default)s)"


FALLBACK = {"temperature": 0.6, "max_new_tokens": 512}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="riskpo-mm eval", description=__doc__.split("\n\n")[0], formatter_class=_Help)
    run = "default: the run's config.yaml when --model is a run's model, else"
    p.add_argument("--model", required=True, help="model folder (config, weights, processor)")
    p.add_argument("--data", required=True, nargs="+", help="record files: JSONL, parquet or HF dataset folders")
    p.add_argument("--out", required=True, help="results JSON to write")
    p.add_argument("--n", type=int, default=16, help="samples per problem")
    p.add_argument("--k", default="1,2,4,8,16", help="pass@k values, each in [1, n]")
    p.add_argument("--temperature", type=float, default=None,
                   help=f"sampling temperature ({run} {FALLBACK['temperature']})")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass")
    p.add_argument("--engine", choices=("hf", "vllm"), default="hf", help="generation backend")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help=f"tokens per response ({run} {FALLBACK['max_new_tokens']})")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (hf engine)")
    p.add_argument("--max-problems", type=int, default=None, help="evaluate only the first N problems (default: all)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--family", default=None, help="model family (default: from the model's config)")
    p.add_argument("--min-pixels", type=int, default=None,
                   help=f"image pixel budget, lower bound ({run} riskpo_mm.data.ImageConfig's 3136)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help=f"image pixel budget, upper bound ({run} riskpo_mm.data.ImageConfig's 401408)")
    p.add_argument("--system-prompt", default=None, help=f"system prompt ({run} none)")
    p.add_argument("--on-bad-record", choices=("error", "skip"), default="error",
                   help="a bad record stops the evaluation (error) or is skipped and counted (skip)")
    p.add_argument("--response-chars", type=int, default=2000, help="keep at most this many characters per response")
    p.add_argument("--no-responses", action="store_true",
                   help="do not keep response texts in the results file (default: kept)")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                   help="auto: bfloat16 on a GPU, float32 on a CPU")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm engine only")
    p.add_argument("--max-model-len", type=int, default=None,
                   help="vllm engine only: prompt + response tokens per sequence (default: the model's)")
    return p


def run_config_path(model: str | Path) -> Optional[Path]:
    """The `config.yaml` of the run a model folder belongs to (final_model, best_model, sft_model: one
    folder up; checkpoints/<step>/model: three up), else None."""
    import os

    m = Path(os.path.abspath(model))  # not resolved: <run>/final_model may be a link
    for candidate in (m.parent / "config.yaml",
                      m.parents[2] / "config.yaml" if len(m.parents) > 2 and m.parents[1].name == "checkpoints" else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def apply_run_defaults(args) -> list[str]:
    """Fill the flags not given from the run's config.yaml, then the built-in fallbacks; returns what the
    run gave, as `name value (config key)` strings."""
    import yaml

    path = run_config_path(args.model)
    raw: dict = {}
    if path is not None:
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            raw = {}
    get = lambda sec, key: (raw.get(sec) or {}).get(key) if isinstance(raw.get(sec) or {}, dict) else None
    taken = []
    run_values = {
        "max_new_tokens": (get("eval", "max_new_tokens") or get("rollout", "max_new_tokens"),
                           "eval.max_new_tokens" if get("eval", "max_new_tokens") else "rollout.max_new_tokens"),
        "temperature": (get("eval", "temperature"), "eval.temperature"),
        "min_pixels": (get("data", "min_pixels"), "data.min_pixels"),
        "max_pixels": (get("data", "max_pixels"), "data.max_pixels"),
        "system_prompt": (get("data", "system_prompt"), "data.system_prompt"),
    }
    for name, (value, key) in run_values.items():
        if getattr(args, name) is None and value is not None:
            setattr(args, name, value)
            taken.append(f"{name} {value!r} ({key})")
    for name, value in FALLBACK.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if taken:
        print(f"[riskpo-mm eval] from the run's {path}: {', '.join(taken)}", file=sys.stderr)
    return taken


def check_modalities(config, records: list, model: str) -> None:
    """One clear line for a text-only model on image records (instead of a traceback from the processor)."""
    if hasattr(config, "vision_config"):
        return
    with_images = [r for r in records if r.images]
    if with_images:
        raise EvalError(f"--model {model} is a text-only model (model_type {getattr(config, 'model_type', '?')!r}) but "
                        f"{len(with_images)} of the {len(records)} records have images (first: {with_images[0].id!r}); "
                        "evaluate a Qwen-VL model, or give text-only records")


def load_eval_records(paths: Sequence[str], on_bad_record: str = "error", max_problems: Optional[int] = None) -> list:
    """Records of every file in order, meta["source"] defaulting to the file's stem; first `max_problems`."""
    from riskpo_mm.data import load_records

    records = []
    for path in paths:
        loaded = load_records([path], on_bad_record=on_bad_record)
        if loaded.skipped:
            print(f"[riskpo-mm eval] {path}: skipped {loaded.skipped} bad record(s); first: {loaded.bad[0]}", file=sys.stderr)
        stem = Path(path).stem if Path(path).is_file() else Path(path).name
        for rec in loaded:
            if not rec.meta.get("source"):
                rec.meta = {**rec.meta, "source": stem}
            records.append(rec)
    if max_problems is not None:
        records = records[:max_problems]
    if not records:
        raise EvalError(f"--data: no records to evaluate in {list(paths)}")
    return records


def _image_config(args):
    from riskpo_mm.data import ImageConfig

    default = ImageConfig()
    return ImageConfig(min_pixels=args.min_pixels or default.min_pixels, max_pixels=args.max_pixels or default.max_pixels)


def _family(model_config, configured: Optional[str]) -> str:
    from riskpo_mm.generation.batch import model_family

    return model_family(model_config, configured)


def run_hf(args, records: list) -> EvalResult:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32, "float32": torch.float32,
             "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    config = AutoConfig.from_pretrained(args.model)
    check_modalities(config, records, args.model)
    auto = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
    model = auto.from_pretrained(args.model, dtype=dtype).to(device).eval()
    processor = AutoProcessor.from_pretrained(args.model)
    return evaluate(
        model, processor, records, family=_family(config, args.family), image_config=_image_config(args),
        n=args.n, ks=parse_ks(args.k), temperature=args.temperature, max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size, seed=args.seed, top_p=args.top_p, system_prompt=args.system_prompt,
        keep_responses=not args.no_responses, response_chars=args.response_chars, progress=True,
    )


def run_vllm(args, records: list) -> EvalResult:
    """vLLM engine: `generation.vllm.VLLMRollout`, the local trainer's rollout backend: the same chat
    prompts, resized images, sampler (vision tokens suppressed, stop at EOS) and sampled-distribution
    log-probs (so results carry the entropy) as the HF path."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise EvalError("--engine vllm: the vllm package is not importable here; install the GPU extra "
                        "(pip install 'riskpo-mm[gpu]') or use --engine hf") from None
    import torch
    from transformers import AutoConfig

    from riskpo_mm.eval.harness import evaluate_with_vllm
    from riskpo_mm.generation.vllm import VLLMRollout

    t0 = time.perf_counter()
    config = AutoConfig.from_pretrained(args.model)
    check_modalities(config, records, args.model)
    family = _family(config, args.family) if hasattr(config, "vision_config") else args.family
    dtype = {"auto": "bfloat16" if torch.cuda.is_available() else "float32"}.get(args.dtype, args.dtype)
    rollout = VLLMRollout(args.model, dtype=dtype, max_model_len=args.max_model_len, seed=args.seed,
                          image_config=_image_config(args), family=family,
                          max_images_per_prompt=max(1, max(len(r.images) for r in records)),
                          tensor_parallel_size=args.tensor_parallel_size, gpu_memory_utilization=0.9,
                          enable_sleep_mode=False)
    try:
        result = evaluate_with_vllm(
            rollout, records, n=args.n, ks=parse_ks(args.k), temperature=args.temperature,
            max_new_tokens=args.max_new_tokens, seed=args.seed, top_p=args.top_p, system_prompt=args.system_prompt,
            keep_responses=not args.no_responses, response_chars=args.response_chars, progress=True,
        )
    finally:
        rollout.close()
    result.wall_s = time.perf_counter() - t0
    return result


def format_groups(result: EvalResult) -> str:
    """A small table: one row per group (all, tasks, sources, levels) with pass@k and maj@n."""
    keys = [k for k in result.overall if k.startswith(("pass@", "maj@"))]
    rows = [["group", "problems", *keys, "format"]]
    for group, m in result.metrics.items():
        rows.append([group, str(int(m["problems"])), *(f"{m[k]:.3f}" for k in keys), f"{m['format_rate']:.3f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows)


def main(argv: Optional[list[str]] = None) -> int:
    from riskpo_mm.data.record import DataError

    args = build_parser().parse_args(argv)
    try:
        ks = parse_ks(args.k)
        bad = [k for k in ks if not 1 <= k <= args.n]
        if args.n < 1 or bad:
            raise EvalError(f"--k: values {bad} outside [1, --n={args.n}]; pass@k needs at least k samples per problem")
        if args.max_problems is not None and args.max_problems < 1:
            raise EvalError(f"--max-problems: expected an integer >= 1, got {args.max_problems}")
        if not Path(args.model).exists():
            raise EvalError(f"--model: the folder {args.model} does not exist")
        if not (Path(args.model) / "config.json").is_file():
            raise EvalError(f"--model: {args.model} is not a model folder (no config.json)")
        apply_run_defaults(args)
        records = load_eval_records(args.data, args.on_bad_record, args.max_problems)
        result = run_vllm(args, records) if args.engine == "vllm" else run_hf(args, records)
    except (EvalError, DataError, FileNotFoundError) as err:
        print(f"riskpo-mm eval: {err}", file=sys.stderr)
        return 2
    result.config.update({"model": str(args.model), "data": list(args.data)})
    out = result.save(args.out)
    print(format_groups(result))
    print(result.summary())
    print(f"[riskpo-mm eval] results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
