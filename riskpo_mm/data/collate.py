"""Records -> left-padded, model-ready prompt tensors (text-only and image records mixed).

Images go through `resize_image` (qwen-vl-utils) once, and the processor is
called with do_resize=False, so the image token count of a prompt is fixed by
ImageConfig + family alone: rollout and training inputs built from the same
PromptBatch (or from the same records) agree token for token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .images import ImageConfig, load_image, resize_image
from .record import Record
from .templates import build_messages

IMAGE_TOKEN = "<|image_pad|>"


@dataclass
class PromptBatch:
    """Prompt tensors for P records; vision tensors are concatenated over records in order."""

    input_ids: torch.Tensor  # [P, L] left-padded
    attention_mask: torch.Tensor  # [P, L]
    mm_token_type_ids: torch.Tensor  # [P, L] 1 where input_ids == image token id
    pixel_values: torch.Tensor | None  # [N_patches, C*T*p*p] or None when no record has images
    image_grid_thw: torch.Tensor | None  # [N_images, 3]
    image_counts: list[int]  # images per record
    patch_offsets: list[int]  # [P+1] record i owns pixel_values[patch_offsets[i]:patch_offsets[i+1]]
    texts: list[str] = field(default_factory=list)  # chat-templated prompt strings
    records: list[Record] = field(default_factory=list)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def vision_inputs(self, indices: Sequence[int]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """pixel_values / image_grid_thw for the records at `indices` (repeats allowed, e.g. n samples per prompt)."""
        if self.pixel_values is None:
            return None, None
        img_off = [0]
        for c in self.image_counts:
            img_off.append(img_off[-1] + c)
        pv = [self.pixel_values[self.patch_offsets[i] : self.patch_offsets[i + 1]] for i in indices]
        grid = [self.image_grid_thw[img_off[i] : img_off[i + 1]] for i in indices]
        if not any(g.shape[0] for g in grid):
            return None, None
        return torch.cat(pv), torch.cat(grid)

    def prompt_ids(self, i: int) -> torch.Tensor:
        """Unpadded token ids of prompt i: [L_i]."""
        return self.input_ids[i][self.attention_mask[i].bool()]


def image_token_id(processor: Any) -> int:
    tid = getattr(processor, "image_token_id", None)
    tok = getattr(processor, "tokenizer", processor)  # text models load a bare tokenizer
    return int(tid) if tid is not None else int(tok.convert_tokens_to_ids(IMAGE_TOKEN))


def mm_token_type_ids(input_ids: torch.Tensor, image_token: int, video_token: int | None = None) -> torch.Tensor:
    """Token types for M-RoPE, [..., L] int64: 1 at image placeholders, 2 at video placeholders, else 0.

    Qwen2-VL/3-VL/3.5 require them with `image_grid_thw`; Qwen2.5-VL silently computes wrong positions
    without them."""
    types = (input_ids == image_token).long()
    if video_token is not None:
        types = types.masked_fill(input_ids == video_token, 2)
    return types


def prepare_images(record: Record, image_config: ImageConfig, family: str) -> list:
    """Load and resize a record's images with the shared resize."""
    return [resize_image(load_image(ref), family, image_config.min_pixels, image_config.max_pixels) for ref in record.images]


def encode_prompts(
    records: Sequence[Record],
    processor: Any,
    image_config: ImageConfig,
    family: str,
    system_prompt: str | None = None,
    instructions: dict[str, str] | None = None,
) -> PromptBatch:
    """Chat-template and tokenize a mixed batch of records into left-padded tensors."""
    texts, flat_images, counts = [], [], []
    for rec in records:
        images = prepare_images(rec, image_config, family)
        messages = build_messages(rec, system_prompt, images=images, instructions=instructions)
        texts.append(processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        flat_images.extend(images)
        counts.append(len(images))
    vision = {"images": flat_images, "do_resize": False} if flat_images else {}
    out = processor(text=texts, padding=True, padding_side="left", return_tensors="pt", **vision)
    input_ids = out["input_ids"]
    image_tok = image_token_id(processor)
    grid = out.get("image_grid_thw") if flat_images else None
    pixel_values = out.get("pixel_values") if flat_images else None
    patch_offsets = [0]
    k = 0
    for c in counts:
        n = int(grid[k : k + c].prod(dim=-1).sum()) if c else 0
        patch_offsets.append(patch_offsets[-1] + n)
        k += c
    return PromptBatch(
        input_ids=input_ids,
        attention_mask=out["attention_mask"],
        mm_token_type_ids=mm_token_type_ids(input_ids, image_tok),
        pixel_values=pixel_values,
        image_grid_thw=grid,
        image_counts=counts,
        patch_offsets=patch_offsets,
        texts=texts,
        records=list(records),
    )


class PromptDataset(torch.utils.data.Dataset):
    """Index -> Record; pair with PromptCollator so image decoding runs in DataLoader workers."""

    def __init__(self, records: Sequence[Record]):
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Record:
        return self.records[i]


class PromptCollator:
    """DataLoader collate_fn: list[Record] -> PromptBatch (picklable for worker processes)."""

    def __init__(self, processor: Any, image_config: ImageConfig, family: str, system_prompt: str | None = None):
        self.processor, self.image_config, self.family, self.system_prompt = processor, image_config, family, system_prompt

    def __call__(self, records: list[Record]) -> PromptBatch:
        return encode_prompts(records, self.processor, self.image_config, self.family, self.system_prompt)
