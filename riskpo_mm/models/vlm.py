"""Rollout generation and the training forward around HF Qwen-VL models.

Two functions the trainers share, written so that their log-probs agree:
`generate` samples n responses per prompt with HF `generate` (vision special
tokens suppressed, multimodal inputs repeated per sample) and records the
log-probs of the sampled tokens; `sequence_logprobs` recomputes them with one
forward over the full sequences, exactly as OpenRLHF's `Actor.forward` does
for VLMs (positions left to the model, `mm_token_type_ids` over the whole
sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate

import torch
from transformers import GenerationConfig, PretrainedConfig

from riskpo_mm.data.collate import mm_token_type_ids

# Per-sample multimodal tensors: (pixel key, grid key, token-id config attribute).
_MM_GROUPS = (
    ("pixel_values", "image_grid_thw", "image_token_id"),
    ("pixel_values_videos", "video_grid_thw", "video_token_id"),
)
_MM_KEYS = {k for g in _MM_GROUPS for k in g[:2]}


def is_vlm(config: PretrainedConfig) -> bool:
    """True for configs with a vision tower (what OpenRLHF's `is_vlm_model` checks)."""
    return hasattr(config, "vision_config")


def token_types(input_ids: torch.Tensor, config: PretrainedConfig) -> torch.Tensor:
    """`mm_token_type_ids` [B, L] for a model config's image and video token ids."""
    return mm_token_type_ids(input_ids, config.image_token_id, getattr(config, "video_token_id", None))


def vision_token_ids(source) -> list[int]:
    """Ids of the vision special tokens a policy must never sample.

    `source` is a tokenizer/processor (<|vision_start|>, <|vision_end|>, <|vision_pad|>, <|image_pad|>,
    <|video_pad|>) or a model config (its four vision ids, plus <|vision_pad|> where the ids have the
    Qwen layout). A sampled image/video token breaks the next forward. Pass the result as
    `model.generate(..., suppress_tokens=vision_token_ids(model.config))`."""
    from riskpo_mm.models.tokenizers import VISION_TOKENS

    tok = getattr(source, "tokenizer", source)
    if hasattr(tok, "convert_tokens_to_ids"):
        ids = tok.convert_tokens_to_ids(list(VISION_TOKENS))
        if tok.unk_token_id is not None and tok.unk_token_id in ids:
            raise ValueError(f"tokenizer lacks one of the vision tokens {VISION_TOKENS}")
        return sorted(set(ids))
    names = ("vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id")
    start, end, image, video = (getattr(source, n, None) for n in names)
    if image is None:
        raise ValueError(f"{type(source).__name__} has no image_token_id: not a vision-language config")
    ids = {i for i in (start, end, image, video) if i is not None}
    if start is not None and (end, image, video) == (start + 1, start + 3, start + 4):
        ids.add(start + 2)  # <|vision_pad|>, between them in every Qwen vocabulary
    return sorted(ids)


def _items_per_row(input_ids: torch.Tensor, grid: torch.Tensor, token_id: int, merge: int, key: str) -> list[int]:
    """How many images (or videos) of `grid` each row of `input_ids` holds, in order."""
    tokens_per_item = (grid.prod(-1) // merge**2).tolist()  # [N]
    tokens_per_row = (input_ids == token_id).sum(-1).tolist()  # [B]
    counts, i = [], 0
    for r, want in enumerate(tokens_per_row):
        start, got = i, 0
        while got < want and i < len(tokens_per_item):
            got += tokens_per_item[i]
            i += 1
        if got != want:
            raise ValueError(f"row {r} has {want} placeholder tokens but {key} gives {got} for its items")
        counts.append(i - start)
    if i != len(tokens_per_item):
        raise ValueError(f"{key} has {len(tokens_per_item)} items but the prompts use {i}")
    return counts


def select_mm_inputs(
    input_ids: torch.Tensor,
    mm_inputs: dict[str, torch.Tensor],
    rows: list[int] | torch.Tensor,
    config: PretrainedConfig,
) -> dict[str, torch.Tensor]:
    """The multimodal inputs of `input_ids[rows]` (rows may repeat or reorder), e.g. to cut a rollout
    into micro-batches. pixel_values rows are patches ([sum_i t*h*w, D]); *_grid_thw rows are items
    ([N, 3]); `input_ids` ([B, L], any L covering the prompts) says which items belong to which row."""
    unknown = set(mm_inputs) - _MM_KEYS
    if unknown:
        raise ValueError(f"unknown multimodal inputs {sorted(unknown)}; expected keys among {sorted(_MM_KEYS)}")
    rows = rows.tolist() if isinstance(rows, torch.Tensor) else list(rows)
    merge = config.vision_config.spatial_merge_size
    out: dict[str, torch.Tensor] = {}
    for pix_key, grid_key, tok_attr in _MM_GROUPS:
        if grid_key not in mm_inputs:
            continue
        grid = mm_inputs[grid_key]  # [N, 3]
        counts = _items_per_row(input_ids, grid, getattr(config, tok_attr), merge, grid_key)
        first_item = [0, *accumulate(counts)]
        patches = grid.prod(-1).tolist()  # [N]
        first_patch = [0, *accumulate(patches)]
        items = [i for r in rows for i in range(first_item[r], first_item[r] + counts[r])]
        patch_idx = [p for i in items for p in range(first_patch[i], first_patch[i] + patches[i])]
        pix = mm_inputs[pix_key]
        out[grid_key] = grid[torch.tensor(items, dtype=torch.long, device=grid.device)]
        out[pix_key] = pix[torch.tensor(patch_idx, dtype=torch.long, device=pix.device)]
    return out


def repeat_mm_inputs(
    input_ids: torch.Tensor, mm_inputs: dict[str, torch.Tensor], n: int, config: PretrainedConfig
) -> dict[str, torch.Tensor]:
    """Repeat each prompt's images/videos n times, so row r*n+j of `input_ids.repeat_interleave(n, 0)`
    finds its own (pixel_values per image, image_grid_thw per image)."""
    return select_mm_inputs(input_ids, mm_inputs, [r for r in range(input_ids.shape[0]) for _ in range(n)], config)


@dataclass
class Rollout:
    """n samples per prompt, the n samples of a prompt contiguous (row p*n + j)."""

    sequences: torch.Tensor  # [P*n, L+T] prompt (left-padded) + response (right-padded)
    attention_mask: torch.Tensor  # [P*n, L+T] 1 on prompt tokens and response tokens up to EOS
    action_mask: torch.Tensor  # [P*n, T] 1 on response tokens up to and including the first EOS
    logprobs: torch.Tensor  # [P*n, T] log pi(token) at the sampling temperature, 0 where action_mask is 0
    mm_inputs: dict[str, torch.Tensor] = field(default_factory=dict)  # pixel_values, image_grid_thw per sample
    prompt_length: int = 0  # L

    @property
    def response_ids(self) -> torch.Tensor:
        """[P*n, T] the generated tokens (pad after EOS)."""
        return self.sequences[:, self.prompt_length :]


def _action_mask(response: torch.Tensor, eos_token_ids: list[int]) -> torch.Tensor:
    """response: [B, T] -> [B, T] bool, True up to and including the first EOS."""
    is_eos = torch.isin(response, torch.tensor(eos_token_ids, device=response.device))
    return (is_eos.long().cumsum(-1) - is_eos.long()) == 0


@torch.no_grad()
def generate(
    model,
    batch: dict[str, torch.Tensor],
    *,
    n: int = 1,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_token_ids: list[int] | int | None = None,
    pad_token_id: int | None = None,
    seed: int | None = None,
    suppress_token_ids: list[int] | None = None,
) -> Rollout:
    """Sample `n` responses per prompt of a left-padded `batch` (input_ids, attention_mask, and for
    VLMs pixel_values/image_grid_thw; a given mm_token_type_ids is recomputed from input_ids) with HF
    `generate`. Works for text-only causal LMs too.

    Vision special tokens are never sampled (`suppress_token_ids`, default `vision_token_ids(config)`).
    `logprobs` are log_softmax(logits / temperature) of the sampled tokens over the whole vocabulary:
    the policy's own log-probs, which the training forward reproduces (top-p truncation and
    suppression change what is sampled, not these values). `seed` fixes the sampling RNG."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    config = model.config
    gen_cfg = model.generation_config
    eos = eos_token_ids if eos_token_ids is not None else gen_cfg.eos_token_id
    if eos is None:
        raise ValueError("eos_token_ids not given and model.generation_config.eos_token_id is unset")
    eos = [eos] if isinstance(eos, int) else list(eos)
    pad = pad_token_id if pad_token_id is not None else gen_cfg.pad_token_id
    if pad is None:
        pad = eos[0]

    input_ids = batch["input_ids"]  # [P, L]
    attention_mask = batch.get("attention_mask", torch.ones_like(input_ids))
    mm = {k: v for k, v in batch.items() if k in _MM_KEYS}
    ids_n = input_ids.repeat_interleave(n, 0)  # [P*n, L]
    mask_n = attention_mask.repeat_interleave(n, 0)
    mm_n = repeat_mm_inputs(input_ids, mm, n, config) if mm else {}
    extra = dict(mm_n)
    if is_vlm(config):
        extra["mm_token_type_ids"] = token_types(ids_n, config)
        if suppress_token_ids is None:
            suppress_token_ids = vision_token_ids(config)

    cfg = GenerationConfig(
        do_sample=True, temperature=temperature, top_p=top_p, top_k=0, max_new_tokens=max_new_tokens,
        eos_token_id=eos, pad_token_id=pad, suppress_tokens=suppress_token_ids or None,
        output_logits=True, return_dict_in_generate=True, use_cache=True,
    )
    devices = [ids_n.device] if ids_n.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        out = model.generate(input_ids=ids_n, attention_mask=mask_n, generation_config=cfg, **extra)

    L = ids_n.shape[1]
    sequences = out.sequences  # [P*n, L+T]
    response = sequences[:, L:]  # [P*n, T]
    logprobs = torch.stack(
        [
            torch.log_softmax(step.float() / temperature, -1).gather(-1, response[:, t : t + 1]).squeeze(-1)
            for t, step in enumerate(out.logits)  # step: [P*n, V]
        ],
        dim=1,
    )  # [P*n, T]
    action_mask = _action_mask(response, eos)
    return Rollout(
        sequences=sequences,
        attention_mask=torch.cat([mask_n, action_mask.to(mask_n.dtype)], dim=1),
        action_mask=action_mask,
        logprobs=logprobs * action_mask,
        mm_inputs=mm_n,
        prompt_length=L,
    )


def sequence_logprobs(
    model,
    sequences: torch.Tensor,
    attention_mask: torch.Tensor,
    action_mask: torch.Tensor,
    mm_inputs: dict[str, torch.Tensor] | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Log-probs of the last T = action_mask.shape[1] tokens of `sequences` under `model` ([B, T],
    0 where action_mask is 0), the way OpenRLHF's Actor.forward computes them: for VLMs position ids
    are left to the model and `mm_token_type_ids` covers the full sequence; for text models
    positions are attention_mask.cumsum - 1. Differentiable (no no_grad)."""
    mm_inputs = dict(mm_inputs or {})
    T = action_mask.shape[1]
    if is_vlm(model.config):
        position_ids = None
        if mm_inputs:
            mm_inputs["mm_token_type_ids"] = token_types(sequences, model.config)
    else:
        position_ids = attention_mask.long().cumsum(-1) - 1
        position_ids = position_ids.masked_fill(attention_mask == 0, 1)
    out = model(sequences, attention_mask=attention_mask, position_ids=position_ids, logits_to_keep=T + 1, **mm_inputs)
    logits = out.logits[:, :-1].float() / temperature  # [B, T, V] predicting sequences[:, -T:]
    logprobs = torch.log_softmax(logits, -1).gather(-1, sequences[:, -T:].unsqueeze(-1)).squeeze(-1)  # [B, T]
    return logprobs * action_mask
