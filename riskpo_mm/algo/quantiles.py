"""Quantiles: masked empirical quantiles and the online `QuantileTracker` (spec section 4)."""

from __future__ import annotations

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


class QuantileTracker:
    """Online quantile estimates of a stream of bundle scores (one estimate per level).

    Step k: q_{k+1} = q_k + lr_k * (level - mean_j 1[S_j < q_k]), lr_k = lr / (1 + k) ** decay,
    then sorted across levels (monotone rearrangement) so estimates never cross and a <= b.
    The first step (no estimate yet) initialises q_0 to the empirical quantiles of its scores.
    """

    def __init__(self, levels: Sequence[float], lr: float = 0.1, decay: float = 0.0) -> None:
        self.levels = torch.tensor(list(levels), dtype=torch.float64)  # [L]
        self._by_level = torch.argsort(self.levels, stable=True)
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
        s = scores.detach().to(torch.float64).reshape(1, -1)
        count = torch.tensor([s.shape[1]], device=s.device)
        self.estimates = masked_quantile(s, count, self.levels.to(s.device))[0]

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
        s = scores.detach().to(torch.float64).reshape(-1)
        if self.estimates is None:
            self.initialize(s)
        q = self.estimates.to(s.device)
        levels = self.levels.to(s.device)
        below = (s[None, :] < q[:, None]).to(torch.float64).mean(1)  # [L]
        q = q + self.lr_at() * (levels - below)
        # Monotone rearrangement: estimates stay non-decreasing in the level, so a <= b always.
        by_level = self._by_level.to(s.device)
        self.estimates = torch.empty_like(q).index_copy_(0, by_level, torch.sort(q[by_level]).values)
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
