"""Paper advantage (docs/method.md section 5) and response credit (docs/method.md section 6), vectorised.

Shapes: nb bundles, n = max papers per bundle, L = 2 + len(track_grid) quantile levels
ordered [alpha, beta, *track_grid]. Invalid papers (column >= papers of the bundle) are zero.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from riskpo_mm.algo.bundles import Bundles, to_bundle_grid
from riskpo_mm.algo.config import RiskPOConfig

EPS = 1e-6  # added to the level-width denominators
STD_FLOOR = 1e-3  # a std at or below this is replaced by 1.0


def masked_std(x: Tensor, valid: Optional[Tensor]) -> Tensor:
    """Unbiased std over the valid entries of each row; 1.0 where it is <= 1e-3 or there are < 2 entries.

    x: [R, n], valid: [R, n] bool or None (every entry valid) -> [R]
    """
    if valid is None:
        count = x.shape[1]
        if count < 2:
            return x.new_ones(x.shape[0])
        std = torch.linalg.vector_norm(x - x.sum(1, keepdim=True) / count, dim=1) / math.sqrt(count - 1)
        return torch.where(std > STD_FLOOR, std, 1.0)
    count = valid.sum(1)
    xv = torch.where(valid, x, torch.zeros_like(x))
    mean = xv.sum(1) / count.clamp(min=1)
    var = (torch.where(valid, x - mean[:, None], torch.zeros_like(x)) ** 2).sum(1) / (count - 1).clamp(min=1)
    std = var.sqrt()
    return torch.where((count >= 2) & (std > STD_FLOOR), std, torch.ones_like(std))


def paper_advantage(scores: Tensor, valid: Optional[Tensor], q: Tensor, cfg: RiskPOConfig) -> Tensor:
    """MVaR / RVaR / risk-seeking advantage of each paper.

    scores: [nb, n] paper scores S, valid: [nb, n] bool (None: every paper valid), q: [nb or 1, L]
    quantile values per level (non-decreasing in the level, so a <= b).
    Returns A: [nb, n] (scaled by the bundle std when cfg.scale == "bundle_std"; 0 where invalid).
    """
    a, b = q[:, 0:1], q[:, 1:2]  # [nb or 1, 1]
    natural = cfg.baseline == "natural"
    # = max(S - a, 0) - max(S - b, 0) + c (a - b) for a <= b; the clamp form keeps A <= 0 exact when c = 1
    g = torch.clamp(scores, a, b) - (b if natural else a)
    cvar = torch.clamp(scores - a, max=0.0)  # = -max(a - S, 0)
    if cfg.baseline == "tracked_mean":
        u = torch.tensor(cfg.track_grid, dtype=scores.dtype, device=scores.device)
        qg = q[:, 2:]  # [nb, G] quantile function on the grid
        g = g - torch.trapezoid(torch.relu(qg - a) - torch.relu(qg - b), u, dim=1)[:, None]
        cvar = cvar - torch.trapezoid(-torch.relu(a - qg), u, dim=1)[:, None]
    w_rvar = 1.0 / (cfg.beta - cfg.alpha + EPS)
    if cfg.objective == "mvar":
        adv = torch.add(g * (w_rvar / (cfg.w_mix + 1.0)), cvar, alpha=cfg.w_mix / ((cfg.alpha + EPS) * (cfg.w_mix + 1.0)))
    elif cfg.objective == "rvar":
        adv = g * w_rvar
    else:  # seeking
        up = torch.clamp(scores - b, min=0.0)
        w = cfg.upper_weight
        adv = torch.add(g * (w_rvar / (w + 1.0)), up, alpha=w / ((1.0 - cfg.beta + EPS) * (w + 1.0)))
    if cfg.scale == "bundle_std":
        adv = adv / masked_std(scores, valid)[:, None]
    return adv if valid is None else torch.where(valid, adv, 0.0)


def credit_factor(cfg: RiskPOConfig, rewards: Tensor, mask: Optional[Tensor], rewards_paired: Tensor, bundles: Bundles) -> Optional[Tensor]:
    """Per-response multiplier of its paper's advantage, in paper order (None for `uniform`: 1 everywhere).

    rewards, mask: [P, n] in response order (mask None: every response valid); rewards_paired: [P, n]
    the same rewards in paper order (column j = the response in paper j). Returns [P, n] or [P, 1].
    """
    if cfg.credit == "uniform":
        return None
    if cfg.credit == "question_std":
        return (1.0 / masked_std(rewards, mask))[:, None]
    if cfg.credit == "score":
        return torch.where(rewards_paired > 0, 0.5, 1.5).to(rewards_paired.dtype)
    # sum_mean (the authors' hard-math recipe, reproduction only): A * (r_i - m_i) / sum_k (r_k - m_k).
    # Known flaw: flips signs and blows up when the sum is small; |sum| <= 1e-6 falls back to A / B.
    dev = rewards_paired - question_mean(rewards, mask)[:, None]  # [P, n]
    dev_sum = to_bundle_grid(dev, bundles).sum(1)[bundles.bundle]  # [P, n] sum over the paper
    size = bundles.size[bundles.bundle].to(rewards.dtype)  # [P]
    big = dev_sum.abs() > EPS
    safe = torch.where(big, dev_sum, torch.ones_like(dev_sum))
    return torch.where(big, dev / safe, (1.0 / size)[:, None].expand_as(dev))


def question_mean(rewards: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Mean of each question's valid rewards: [P, n] -> [P] (0 for no valid response; mask None: all valid)."""
    if mask is None:
        return rewards.sum(1) / max(rewards.shape[1], 1)
    return torch.where(mask, rewards, torch.zeros_like(rewards)).sum(1) / mask.sum(1).clamp(min=1)
