"""Quantiles: masked and pre-sorted empirical quantiles, and the online `QuantileTracker` (docs/method.md section 4)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Optional, Sequence

import torch
from torch import Tensor


def masked_quantile(x: Tensor, count: Tensor, levels: Tensor) -> Tensor:
    """Row-wise empirical quantiles of the first `count[r]` entries of each row.

    x: [R, n] values (entries at column >= count[r] are ignored), count: [R] long, levels: [L].
    Linear interpolation as `numpy.quantile`'s default. Rows with count 0 give 0. -> [R, L]
    """
    n = x.shape[1]
    if n == 0:
        return x.new_zeros(x.shape[0], levels.numel())
    valid = torch.arange(n, device=x.device) < count[:, None]
    xs = torch.sort(torch.where(valid, x, torch.full_like(x, float("inf"))), dim=1).values
    xs = torch.where(torch.isinf(xs), torch.zeros_like(xs), xs)  # padding beyond count is never interpolated to
    last = (count - 1).clamp(min=0).to(torch.float64)  # [R]
    h = last[:, None] * levels.to(device=x.device, dtype=torch.float64)[None, :]  # [R, L]
    lo = h.floor().clamp(max=n - 1)
    frac = (h - lo).to(x.dtype)
    lo = lo.long()
    hi = torch.minimum(lo + 1, (count - 1).clamp(min=0)[:, None])
    x_lo, x_hi = xs.gather(1, lo), xs.gather(1, hi)
    return x_lo + frac * (x_hi - x_lo)


@lru_cache(maxsize=256)
def _interp_index(m: int, levels: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """Columns `[lo..., hi...]` ([2L] long) and weights `frac` ([L]) of the quantiles of m sorted values."""
    h = [(m - 1) * u for u in levels]  # the same float arithmetic as numpy.quantile / the reference
    lo = [min(math.floor(x), m - 1) for x in h]
    hi = [min(i + 1, m - 1) for i in lo]
    index = torch.tensor(lo + hi, dtype=torch.long, device=device)
    frac = torch.tensor([x - i for x, i in zip(h, lo)], dtype=torch.float64).to(device=device, dtype=dtype)
    return index, frac


def sorted_quantile(xs: Tensor, levels: tuple[float, ...]) -> Tensor:
    """Empirical quantiles (numpy.quantile's linear rule) of rows already sorted ascending.

    xs: [..., m] sorted along the last dim, m >= 1 -> [..., L]. Same values as `masked_quantile` with full rows.
    """
    index, frac = _interp_index(xs.shape[-1], levels, xs.dtype, xs.device)
    ends = xs.index_select(-1, index)  # [..., 2L]
    x_lo, x_hi = ends[..., : len(levels)], ends[..., len(levels) :]
    return x_lo + frac * (x_hi - x_lo)


@lru_cache(maxsize=8)  # [5, m] each; m changes only with the batch shape
def tail_weights(m: int, alpha: float, beta: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Rows [VaR_alpha, VaR_beta, CVaR_alpha, RVaR_alpha:beta, mean] as weights on m sorted values: [5, m].

    VaRs interpolate linearly (numpy.quantile); CVaR and RVaR integrate the empirical step quantile
    function (cell k covers levels [k/m, (k+1)/m)). One matrix-vector product gives all five.
    """
    k = torch.arange(m + 1, dtype=torch.float64) / m  # cell edges

    def band(lo: float, hi: float) -> Tensor:
        return torch.clamp(torch.clamp(k[1:], max=hi) - torch.clamp(k[:-1], min=lo), min=0.0) / (hi - lo)

    index, frac = _interp_index(m, (alpha, beta), torch.float64, torch.device("cpu"))
    var = torch.zeros(2, m, dtype=torch.float64)
    var[[0, 1], index[:2]] += 1.0 - frac
    var[[0, 1], index[2:]] += frac
    weights = torch.cat([var, torch.stack([band(0.0, alpha), band(alpha, beta), torch.full((m,), 1.0 / m, dtype=torch.float64)])])
    return weights.to(device=device, dtype=dtype)


class QuantileTracker:
    """Online quantile estimates of a stream of bundle scores (one estimate per level).

    Step k: q_{k+1} = q_k + lr_k * (level - mean_j 1[S_j < q_k]), lr_k = lr / (1 + k) ** decay,
    then sorted across the levels of each block (monotone rearrangement) so estimates of one block
    never cross. ``blocks`` splits the levels into consecutive groups rearranged independently
    (default: one block): the RiskPO estimator tracks ``[alpha, beta]`` as one block, so a <= b
    always, and its logging grid as another, so logging levels never change the advantage.
    The first step (no estimate yet) initialises q_0 to the empirical quantiles of its scores.
    """

    def __init__(self, levels: Sequence[float], lr: float = 0.1, decay: float = 0.0,
                 blocks: Optional[Sequence[int]] = None) -> None:
        self.levels = torch.tensor(list(levels), dtype=torch.float64)  # [L]
        self.level_tuple = tuple(float(u) for u in levels)
        blocks = [len(self.level_tuple)] if blocks is None else [int(b) for b in blocks if b]
        if sum(blocks) != len(self.level_tuple) or any(b < 0 for b in blocks):
            raise ValueError(f"QuantileTracker: blocks {blocks} must partition the {len(self.level_tuple)} levels")
        # Sort key: (block, level), so a stable sort orders each block by level and keeps blocks apart.
        block_id = torch.repeat_interleave(torch.arange(len(blocks), dtype=torch.float64), torch.tensor(blocks))
        self._block_offset = block_id * 2.0  # levels lie in (0, 1): an offset of 2 per block separates them
        self._by_level = torch.argsort(self.levels + self._block_offset, stable=True)  # [L] (block, level) order -> slot
        self._rank = torch.argsort(self._by_level)  # [L] slot -> position in that order
        self._block_sizes = blocks
        self._on_device: dict[torch.device, tuple[Tensor, Tensor, Tensor]] = {}
        self.lr, self.decay = float(lr), float(decay)
        self.estimates: Optional[Tensor] = None  # [L] float64
        self.count = 0  # updates done

    @property
    def initialized(self) -> bool:
        return self.estimates is not None

    def lr_at(self, k: Optional[int] = None) -> float:
        return self.lr / (1.0 + (self.count if k is None else k)) ** self.decay

    def initialize(self, scores: Tensor) -> None:
        """Set the estimates to the empirical quantiles of `scores: [m]` (m >= 1)."""
        self.initialize_sorted(torch.sort(scores.detach().to(torch.float64).reshape(-1)).values)

    def initialize_sorted(self, sorted_scores: Tensor) -> None:
        """`initialize` for float64 scores `[m]` already sorted ascending (m >= 1)."""
        self.estimates = sorted_quantile(sorted_scores, self.level_tuple)

    def set(self, estimates: Sequence[float] | Tensor) -> None:
        """Set the estimates explicitly (one value per level)."""
        est = torch.as_tensor(estimates, dtype=torch.float64).reshape(-1)
        if est.shape != self.levels.shape:
            raise ValueError(f"QuantileTracker.set: expected {self.levels.numel()} estimates, got {est.numel()}")
        self.estimates = est.clone()

    def update(self, scores: Tensor) -> None:
        """One tracker step on the pooled scores `[m]` of this step (initialises first if needed)."""
        if scores.numel() == 0:
            return
        self.update_sorted(torch.sort(scores.detach().to(torch.float64).reshape(-1)).values)

    def update_sorted(self, sorted_scores: Tensor) -> None:
        """`update` for float64 scores `[m]` already sorted ascending: counts below q come from a binary search."""
        m = sorted_scores.numel()
        if m == 0:
            return
        if self.estimates is None:
            self.initialize_sorted(sorted_scores)
        device = sorted_scores.device
        if device not in self._on_device:
            self._on_device[device] = (self.levels.to(device), self._by_level.to(device), self._rank.to(device))
        levels, by_level, rank = self._on_device[device]
        q = self.estimates.to(device)
        below = torch.searchsorted(sorted_scores, q).to(torch.float64) / m  # [L] fraction of S_j < q
        q = q + self.lr_at() * (levels - below)
        # Monotone rearrangement within each block: estimates stay non-decreasing in the level.
        ordered = q.index_select(0, by_level)
        parts = [torch.sort(part).values for part in torch.split(ordered, self._block_sizes)]
        self.estimates = torch.cat(parts).index_select(0, rank)
        self.count += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "levels": self.levels.tolist(),
            "lr": self.lr,
            "decay": self.decay,
            "estimates": None if self.estimates is None else self.estimates.detach().cpu().clone(),
            "count": self.count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        levels = torch.tensor(state["levels"], dtype=torch.float64)
        if levels.shape != self.levels.shape or not torch.allclose(levels, self.levels):
            raise ValueError(f"QuantileTracker.load_state_dict: levels {state['levels']} differ from {self.levels.tolist()}")
        est = state["estimates"]
        self.estimates = None if est is None else torch.as_tensor(est, dtype=torch.float64).clone()
        self.count = int(state["count"])
