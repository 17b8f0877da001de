"""Bundling (docs/method.md section 3): B consecutive prompts form a bundle, optionally within a task.

A trailing group of fewer than B prompts (per task) is kept as a smaller, partial bundle.
Everything is index arithmetic on tensors; no loop over prompts or bundles.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor


@dataclass
class Bundles:
    """Assignment of the step's P prompts to bundles."""

    bundle: Tensor  # [P] long: bundle id of each prompt (batch order kept)
    slot: Tensor  # [P] long: position of the prompt inside its bundle, 0..B-1
    size: Tensor  # [nb] long: number of questions in each bundle
    task: Tensor  # [nb] long: task id of each bundle (index into task_names)
    task_names: list[str]
    num: int  # nb
    bundle_size: int  # B (the full size)
    num_partial: int  # bundles with fewer than B questions
    contiguous: bool = False  # plain batch order: bundle b = prompts [b*B, (b+1)*B), only the last may be partial

    @property
    def dense(self) -> bool:  # contiguous and no partial bundle: [P, ...] is a view of [nb, B, ...]
        return self.contiguous and self.num_partial == 0

    @property
    def partial(self) -> Tensor:  # [nb] bool
        return self.size < self.bundle_size


def task_ids(groups: Optional[Sequence], num_prompts: int, device: torch.device) -> tuple[Tensor, list[str]]:
    """Task label per prompt -> (ids [P] long, names); labels are compared as strings."""
    if groups is None:
        return torch.zeros(num_prompts, dtype=torch.long, device=device), ["all"]
    labels = np.asarray(groups, dtype=object).astype(str)
    if labels.shape != (num_prompts,):
        raise ValueError(f"groups: expected one task label per prompt ({num_prompts}), got shape {labels.shape}")
    names, inverse = np.unique(labels, return_inverse=True)
    return torch.as_tensor(inverse.reshape(-1), dtype=torch.long, device=device), [str(x) for x in names]


@lru_cache(maxsize=64)
def _order_layout(num_prompts: int, bundle_size: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(bundle, slot, size, task) of plain batch-order bundles; cached, since they only depend on P and B."""
    idx = torch.arange(num_prompts, device=device)
    num = -(-num_prompts // bundle_size)
    size = torch.full((num,), bundle_size, dtype=torch.long, device=device)
    if num_prompts % bundle_size:
        size[-1] = num_prompts % bundle_size
    bundle = torch.div(idx, bundle_size, rounding_mode="floor")
    return bundle, idx % bundle_size, size, torch.zeros_like(size)


def order_bundles(num_prompts: int, bundle_size: int, device: torch.device, task_names: Sequence[str] = ("all",)) -> Bundles:
    """Bundles of `bundle_size` consecutive prompts in batch order (one task)."""
    bundle, slot, size, task = _order_layout(num_prompts, bundle_size, torch.device(device))
    partial = int(num_prompts % bundle_size != 0)
    return Bundles(bundle, slot, size, task, list(task_names), size.numel(), bundle_size, partial, contiguous=True)


def make_bundles(task: Tensor, task_names: list[str], bundle_size: int) -> Bundles:
    """Bundles of `bundle_size` consecutive prompts within each task id of `task: [P]`."""
    num_prompts, device = task.shape[0], task.device
    num_tasks = len(task_names)
    if num_tasks == 1:  # plain batch order
        return order_bundles(num_prompts, bundle_size, device, task_names)
    order = torch.argsort(task, stable=True)  # [P] prompts grouped by task, batch order inside
    task_sorted = task[order]
    count = torch.bincount(task, minlength=num_tasks)  # [T]
    start = torch.cumsum(count, 0) - count
    rank = torch.arange(num_prompts, device=device) - start[task_sorted]  # position inside its task
    per_task = torch.div(count + bundle_size - 1, bundle_size, rounding_mode="floor")  # bundles per task
    offset = torch.cumsum(per_task, 0) - per_task
    num, num_partial = (int(v) for v in torch.stack([per_task.sum(), (count % bundle_size != 0).sum()]).tolist())
    bundle = torch.empty_like(task)
    slot = torch.empty_like(task)
    bundle[order] = offset[task_sorted] + torch.div(rank, bundle_size, rounding_mode="floor")
    slot[order] = rank % bundle_size
    size = torch.bincount(bundle, minlength=num)
    btask = torch.zeros(num, dtype=torch.long, device=device).index_copy_(0, bundle, task)
    return Bundles(bundle, slot, size, btask, task_names, num, bundle_size, num_partial)


def to_bundle_grid(values: Tensor, bundles: Bundles, fill: float = 0.0) -> Tensor:
    """Per-prompt rows `values: [P, ...]` laid out as `[nb, B, ...]` (empty slots = fill)."""
    if bundles.contiguous:
        pad = bundles.num * bundles.bundle_size - values.shape[0]
        if pad:
            values = torch.cat([values, values.new_full((pad, *values.shape[1:]), fill)])
        return values.reshape(bundles.num, bundles.bundle_size, *values.shape[1:])
    grid = values.new_full((bundles.num, bundles.bundle_size, *values.shape[1:]), fill)
    grid[bundles.bundle, bundles.slot] = values
    return grid
