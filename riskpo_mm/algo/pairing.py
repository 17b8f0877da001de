"""Pairing (docs/method.md section 3): which response of each question goes into which paper.

`pair_order` returns, per prompt, its response indices in paper order: paper j of a bundle
takes response `order[p, j]` of every prompt p in it. Valid responses come first; a bundle
has as many papers as its smallest valid-response count, the surplus stays unpaired.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from riskpo_mm.algo.bundles import Bundles, to_bundle_grid


def pair_order(mask: Optional[Tensor], pairing: str, generator: torch.Generator, shape: tuple[int, int], device: torch.device) -> Tensor:
    """Order `[P, n]` long of the valid responses (`mask: [P, n]`, None = all valid) in paper order.

    random: a uniform permutation of each prompt's valid responses (argsort of keys drawn on the CPU
    from the estimator's own generator, so the pairing is the same on any device); positional: batch order.
    """
    num_prompts, n = shape
    if pairing == "random":
        keys = torch.rand(num_prompts, n, generator=generator, dtype=torch.float64).to(device)
        if mask is None:
            return torch.argsort(keys, dim=1)  # continuous keys: no ties, stability is moot
    elif mask is None:
        return torch.arange(n, device=device).expand(num_prompts, n)
    else:
        keys = torch.arange(n, dtype=torch.float64, device=device).expand(num_prompts, n)
    keys = keys.masked_fill(~mask, float("inf"))
    return torch.argsort(keys, dim=1, stable=True)


def papers_per_bundle(mask: Tensor, bundles: Bundles) -> Tensor:
    """Number of papers of each bundle `[nb]` = smallest valid-response count among its questions."""
    count = mask.sum(1)  # [P]
    big = mask.shape[1] + 1
    return to_bundle_grid(count, bundles, fill=big).amin(1).clamp(max=mask.shape[1])
