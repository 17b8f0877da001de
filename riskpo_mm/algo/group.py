"""Group-relative baselines with the estimator interface: GRPO, Dr.GRPO, DAPO-style.

Each `advantages(rewards [P, n], groups=None, mask=None) -> [P, n]` normalises rewards within the
prompt's group of valid responses. A prompt with fewer than 2 valid responses gets advantage 0
(no group signal). They keep no state; `state_dict()` is empty.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from riskpo_mm.algo.estimator import check_inputs

GRPO_EPS = 1e-6


def group_stats(rewards: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, unbiased std and count of each prompt's valid rewards: [P, n] -> 3 x [P]."""
    count = mask.sum(1)
    r = torch.where(mask, rewards, torch.zeros_like(rewards))
    mean = r.sum(1) / count.clamp(min=1)
    var = (torch.where(mask, rewards - mean[:, None], torch.zeros_like(rewards)) ** 2).sum(1) / (count - 1).clamp(min=1)
    return mean, var.sqrt(), count


def grpo_advantage(rewards: Tensor, mask: Tensor, normalize_std: bool = True) -> Tensor:
    """GRPO: (r - group mean) / (group std + 1e-6); Dr.GRPO (normalize_std=False): r - group mean.

    rewards, mask: [P, n] -> [P, n] (0 at invalid responses and for groups of < 2 responses).
    """
    mean, std, count = group_stats(rewards, mask)
    adv = rewards - mean[:, None]
    if normalize_std:
        adv = adv / (std[:, None] + GRPO_EPS)
    keep = mask & (count >= 2)[:, None]
    return torch.where(keep, adv, torch.zeros_like(adv))


class _GroupEstimator:
    name = "group"
    Options = None  # no options of their own
    normalize_std = True
    keep: Optional[Tensor] = None  # every prompt trains (DAPO sets it per call)

    def __init__(self, options: None = None, seed: int = 0) -> None:
        self.metrics: dict[str, float] = {}

    @torch.no_grad()
    def advantages(self, rewards: Tensor, groups: Optional[Sequence] = None, mask: Optional[Tensor] = None) -> Tensor:
        mask = check_inputs(rewards, mask, type(self).__name__)
        adv = grpo_advantage(rewards, mask, self.normalize_std)
        valid = adv[mask]
        stats = [
            valid.mean() if valid.numel() else adv.new_zeros(()),
            valid.std() if valid.numel() > 1 else adv.new_zeros(()),
            (valid == 0).to(adv.dtype).mean() if valid.numel() else adv.new_zeros(()),
        ]
        mean, std, zero = torch.stack(stats).double().cpu().tolist()
        self.metrics = {"adv/mean": mean, "adv/std": std, "zero_adv_frac": zero}
        return adv

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected an empty state, got keys {sorted(state)}")


class GRPOEstimator(_GroupEstimator):
    """GRPO: group mean/std normalisation."""

    name = "grpo"


class DrGRPOEstimator(_GroupEstimator):
    """Dr.GRPO: group mean only (no std normalisation; the loss side drops length normalisation)."""

    name = "dr_grpo"
    normalize_std = False


class DAPOEstimator(_GroupEstimator):
    """DAPO-style: GRPO advantage plus the dynamic-sampling mask.

    After each call `keep: [P] bool` marks prompts whose valid rewards are not all equal (the
    groups DAPO keeps); `metrics["kept_fraction"]` is its mean. Dropped groups already have A = 0.
    """

    name = "dapo"


    @torch.no_grad()
    def advantages(self, rewards: Tensor, groups: Optional[Sequence] = None, mask: Optional[Tensor] = None) -> Tensor:
        adv = super().advantages(rewards, groups, mask)
        m = mask if mask is not None else torch.ones_like(rewards, dtype=torch.bool)
        hi = torch.where(m, rewards, torch.full_like(rewards, -float("inf"))).amax(1)
        lo = torch.where(m, rewards, torch.full_like(rewards, float("inf"))).amin(1)
        self.keep = (m.sum(1) >= 2) & (hi > lo)  # [P]
        self.metrics["kept_fraction"] = float(self.keep.double().mean()) if self.keep.numel() else 0.0
        return adv
