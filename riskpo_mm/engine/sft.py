"""Supervised warm start: teach a fresh model the answer format before RL.

Targets are the gold responses in the task template's form
(`<think>rationale</think>` then `\\boxed{answer}`; a fenced block for code),
with the record's `meta["rationale"]` when it has one. Prompts go through the
same `encode_prompts` as rollouts, and the loss is the token-mean NLL of the
response tokens. The warm start runs in one process before the RL engine
starts (for real models, warm-start with OpenRLHF's `train_sft` instead) and
is cached in `<run>/sft_model` (reused only while model, data, sft settings and
seed are unchanged).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from riskpo_mm import tasks
from riskpo_mm.algo import masked_mean
from riskpo_mm.config import RunConfig
from riskpo_mm.data import ImageConfig, Record, encode_prompts
from riskpo_mm.engine.assets import ensure_data, ensure_model, load_sources
from riskpo_mm.generation.batch import model_family, tokenizer_of

DONE = "sft_done.json"


def gold_response(record: Record) -> str:
    """The response a perfect policy writes for `record`, in its task's template."""
    spec = tasks.get(record.task)
    if spec is not None and spec.gold_response is not None:
        return spec.gold_response(record)
    rationale = str(record.meta.get("rationale") or record.meta.get("solution") or "").strip()
    if record.task == "code":
        return f"<think>\n{rationale}\n</think>\n```python\n{record.answer.strip()}\n```"
    return f"<think>\n{rationale}\n</think>\n\\boxed{{{record.answer}}}"


def _batch(records: list[Record], processor, image_config: ImageConfig, family: str, system_prompt, device):
    """Right-padded prompt + gold response; loss mask on the response tokens (and the closing EOS)."""
    tok = tokenizer_of(processor)
    pb = encode_prompts(records, processor, image_config, family, system_prompt=system_prompt)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    seqs, masks = [], []
    for i, rec in enumerate(records):
        prompt = pb.prompt_ids(i)
        target = torch.tensor(tok(gold_response(rec), add_special_tokens=False)["input_ids"] + [eos])
        seqs.append(torch.cat([prompt, target]))
        masks.append(torch.cat([torch.zeros(len(prompt) - 1), torch.ones(len(target))]))
    S = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), S), tok.pad_token_id, dtype=torch.long)
    attn = torch.zeros(len(seqs), S, dtype=torch.long)
    loss_mask = torch.zeros(len(seqs), S - 1)
    for i, (s, m) in enumerate(zip(seqs, masks)):
        ids[i, : len(s)], attn[i, : len(s)], loss_mask[i, : len(m)] = s, 1, m
    pixels, grid = pb.vision_inputs(range(len(records)))
    mm_inputs = {} if grid is None else {"pixel_values": pixels.to(device), "image_grid_thw": grid.to(device)}
    return ids.to(device), attn.to(device), loss_mask.to(device), mm_inputs


def run_sft(cfg: RunConfig, base_path: str, out_dir: Path) -> dict[str, float]:
    """Fine-tune `base_path` on the train split's gold responses; save to `out_dir`."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

    from riskpo_mm.models.vlm import sequence_logprobs

    seed = sft_seed(cfg)
    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_sources, _ = ensure_data(cfg)
    records = list(load_sources(cfg, train_sources, mix=True))
    hf_cfg = AutoConfig.from_pretrained(base_path)
    auto = AutoModelForImageTextToText if hasattr(hf_cfg, "vision_config") else AutoModelForCausalLM
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.model.dtype]
    model = auto.from_pretrained(base_path, dtype=dtype, attn_implementation=cfg.model.attn_implementation).to(device)
    processor = AutoProcessor.from_pretrained(base_path)
    family = model_family(model.config, cfg.model.family)
    image_config = ImageConfig(min_pixels=cfg.data.min_pixels, max_pixels=cfg.data.max_pixels)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.sft.lr, betas=(0.9, 0.95), weight_decay=0.0)
    warmup = max(1, cfg.sft.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / cfg.sft.steps))))
    g = torch.Generator().manual_seed(seed)
    order: list[int] = []
    model.train()
    losses: list[float] = []
    t0 = time.time()
    bar = tqdm(range(cfg.sft.steps), desc="SFT warm start", dynamic_ncols=True)
    for _ in bar:
        if len(order) < cfg.sft.batch_size:
            order += torch.randperm(len(records), generator=g).tolist()
        idx, order = order[: cfg.sft.batch_size], order[cfg.sft.batch_size :]
        ids, attn, mask, mm = _batch([records[i] for i in idx], processor, image_config, family,
                                     cfg.data.system_prompt, device)
        logp = sequence_logprobs(model, ids, attn, mask, mm)  # [B, S-1]
        loss = -masked_mean(logp, mask)  # token-mean NLL of the gold responses
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm)
        optim.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
        step = len(losses)
        if bar.disable and (step % max(1, cfg.sft.steps // 10) == 0 or step == 1):  # no bar off a terminal
            print(f"[riskpo-mm] SFT step {step}/{cfg.sft.steps}  loss {sum(losses[-20:]) / len(losses[-20:]):.3f}  "
                  f"{time.time() - t0:.0f} s", flush=True)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    stats = {"steps": cfg.sft.steps, "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])),
             "wall_s": time.time() - t0, "key": sft_key(cfg)}
    (tmp / DONE).write_text(json.dumps(stats))
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return stats


def sft_seed(cfg: RunConfig) -> int:
    """`sft.seed`, else the run's seed."""
    return cfg.seed if cfg.sft.seed is None else cfg.sft.seed


def sft_key(cfg: RunConfig) -> str:
    """What the warm start depends on; a cached `sft_model` is reused only when this matches."""
    parts = {"model": cfg.model.model_dump(mode="json"), "data": cfg.data.model_dump(mode="json"),
             "sft": cfg.sft.model_dump(mode="json"), "seed": sft_seed(cfg), "max_grad_norm": cfg.train.max_grad_norm}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def ensure_sft(cfg: RunConfig) -> Path:
    """The warm-started model folder, trained on the main rank unless a matching one exists; others wait."""
    out = cfg.run_dir / "sft_model"
    key = sft_key(cfg)
    done = out / DONE
    if done.is_file() and json.loads(done.read_text()).get("key") == key:
        return out
    if int(os.environ.get("RANK", "0")) == 0:
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        stats = run_sft(cfg, str(ensure_model(cfg)), out)
        print(f"[riskpo-mm] SFT warm start: {stats}")
    else:
        while not (done.is_file() and json.loads(done.read_text()).get("key") == key):
            time.sleep(2)
    return out
