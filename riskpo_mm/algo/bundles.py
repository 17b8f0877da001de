"""Bundling (spec 3.1-3.2): B consecutive prompts form a bundle, optionally within a task.

A trailing group of fewer than B prompts (per task) is kept as a smaller, partial bundle.
Everything is index arithmetic on tensors; no loop over prompts or bundles.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def make_bundles(task: Tensor, task_names: list[str], bundle_size: int) -> Bundles:
    """Bundles of `bundle_size` consecutive prompts within each task id of `task: [P]`."""
    num_prompts, device = task.shape[0], task.device
    num_tasks = len(task_names)
    if num_tasks == 1:  # plain batch order
        idx = torch.arange(num_prompts, device=device)
        num = -(-num_prompts // bundle_size)
        bundle = torch.div(idx, bundle_size, rounding_mode="floor")
        size = torch.full((num,), bundle_size, dtype=torch.long, device=device)
        if num_prompts % bundle_size:
            size[-1] = num_prompts % bundle_size
        return Bundles(bundle, idx % bundle_size, size, torch.zeros_like(size), task_names, num, bundle_size)
    order = torch.argsort(task, stable=True)  # [P] prompts grouped by task, batch order inside
    task_sorted = task[order]
    count = torch.bincount(task, minlength=num_tasks)  # [T]
    start = torch.cumsum(count, 0) - count
    rank = torch.arange(num_prompts, device=device) - start[task_sorted]  # position inside its task
    per_task = torch.div(count + bundle_size - 1, bundle_size, rounding_mode="floor")  # bundles per task
    offset = torch.cumsum(per_task, 0) - per_task
    num = int(per_task.sum())
    bundle = torch.empty_like(task)
    slot = torch.empty_like(task)
    bundle[order] = offset[task_sorted] + torch.div(rank, bundle_size, rounding_mode="floor")
    slot[order] = rank % bundle_size
    size = torch.bincount(bundle, minlength=num)
    btask = torch.zeros(num, dtype=torch.long, device=device).index_copy_(0, bundle, task)
    return Bundles(bundle, slot, size, btask, task_names, num, bundle_size)


def to_bundle_grid(values: Tensor, bundles: Bundles, fill: float = 0.0) -> Tensor:
    """Per-prompt rows `values: [P, ...]` laid out as `[nb, B, ...]` (empty slots = fill)."""
    grid = values.new_full((bundles.num, bundles.bundle_size, *values.shape[1:]), fill)
    grid[bundles.bundle, bundles.slot] = values
    return grid
