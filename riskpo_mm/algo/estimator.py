"""`RiskPOEstimator`: rewards of a step -> per-response RiskPO advantages (spec sections 3-6).

One call = one training step: bundle the prompts, pair responses into papers, take quantiles
(tracked / per bundle / mix), compute paper advantages, hand them to responses, then advance the
quantile trackers. Tensor ops only; the only Python loop is over the step's task labels.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from riskpo_mm.algo.advantage import credit_factor, paper_advantage
from riskpo_mm.algo.bundles import Bundles, make_bundles, task_ids, to_bundle_grid
from riskpo_mm.algo.config import RiskPOConfig
from riskpo_mm.algo.pairing import pair_order, papers_per_bundle
from riskpo_mm.algo.quantiles import QuantileTracker, masked_quantile


def check_inputs(rewards: Tensor, mask: Optional[Tensor], who: str) -> Tensor:
    """Validate `rewards: [P, n]` float and `mask: [P, n]` bool; returns the mask (all True if None)."""
    if not isinstance(rewards, Tensor) or rewards.dim() != 2 or not rewards.is_floating_point():
        got = f"{tuple(rewards.shape)} {rewards.dtype}" if isinstance(rewards, Tensor) else type(rewards).__name__
        raise ValueError(f"{who}.advantages: rewards must be a float tensor [P, n], got {got}")
    if mask is None:
        mask = torch.ones_like(rewards, dtype=torch.bool)
    elif mask.shape != rewards.shape or mask.dtype != torch.bool:
        raise ValueError(f"{who}.advantages: mask must be a bool tensor of shape {tuple(rewards.shape)}, got {tuple(mask.shape)} {mask.dtype}")
    else:
        mask = mask.to(rewards.device)
    if not bool(torch.isfinite(torch.where(mask, rewards, torch.zeros_like(rewards))).all()):
        raise ValueError(f"{who}.advantages: rewards contain NaN or inf at valid responses")
    return mask


def risk_measures(scores: Tensor, alpha: float, beta: float, w_mix: float) -> Tensor:
    """Empirical [VaR_alpha, VaR_beta, CVaR_alpha, RVaR_alpha:beta, MVaR, mean] of the scores `[m]`.

    VaRs interpolate linearly (numpy.quantile); CVaR and RVaR integrate the empirical step quantile function.
    """
    m = scores.numel()
    if m == 0:
        return scores.new_zeros(6)
    s = torch.sort(scores).values
    k = torch.arange(m + 1, device=s.device, dtype=s.dtype) / m  # cell edges

    def band(lo: float, hi: float) -> Tensor:
        w = torch.clamp(torch.clamp(k[1:], max=hi) - torch.clamp(k[:-1], min=lo), min=0.0) / (hi - lo)
        return (w * s).sum()

    def var(u: float) -> Tensor:
        h = (m - 1) * u
        lo = int(h)
        return s[lo] + (h - lo) * (s[min(lo + 1, m - 1)] - s[lo])

    cvar, rvar = band(0.0, alpha), band(alpha, beta)
    return torch.stack([var(alpha), var(beta), cvar, rvar, (w_mix * cvar + rvar) / (w_mix + 1.0), s.mean()])


class RiskPOEstimator:
    """RiskPO advantages with its own pairing RNG and per-task quantile trackers.

    advantages(rewards [P, n], groups=None, mask=None) -> [P, n], rows in batch order; `groups` is the
    task label per prompt (used when bundle_by="task"); `mask` marks valid responses (unequal counts);
    invalid and unpaired responses get advantage 0. After each call: `metrics` (floats),
    `last_order` ([P, n] paper order used for pairing) and `last_bundles`.
    """

    name = "riskpo"

    def __init__(self, config: Optional[RiskPOConfig] = None, seed: int = 0) -> None:
        self.config = config if config is not None else RiskPOConfig()
        self.levels: list[float] = [self.config.alpha, self.config.beta, *self.config.track_grid]
        self.generator = torch.Generator().manual_seed(seed)
        self.trackers: dict[str, QuantileTracker] = {}
        self.metrics: dict[str, float] = {}
        self.last_order: Optional[Tensor] = None
        self.last_bundles: Optional[Bundles] = None

    def tracker(self, key: str = "all") -> QuantileTracker:
        """The tracker of a task label ("all" when bundle_by="order"), created on first use."""
        if key not in self.trackers:
            self.trackers[key] = QuantileTracker(self.levels, self.config.lr_q, self.config.lr_q_decay)
        return self.trackers[key]

    @torch.no_grad()
    def advantages(self, rewards: Tensor, groups: Optional[Sequence] = None, mask: Optional[Tensor] = None) -> Tensor:
        cfg = self.config
        mask = check_inputs(rewards, mask, "RiskPOEstimator")
        num_prompts, n = rewards.shape
        rewards = torch.where(mask, rewards, torch.zeros_like(rewards))
        tid, names = task_ids(groups if cfg.bundle_by == "task" else None, num_prompts, rewards.device)
        bundles = make_bundles(tid, names, cfg.bundle_size)
        order = pair_order(mask, cfg.pairing, self.generator)  # [P, n]
        npapers = papers_per_bundle(mask, bundles)  # [nb]
        r_paired = rewards.gather(1, order)  # [P, n] column j = response in paper j
        scores = to_bundle_grid(r_paired, bundles).sum(1)  # [nb, n] paper scores S
        col = torch.arange(n, device=rewards.device)
        valid = col < npapers[:, None]  # [nb, n]
        full = ~bundles.partial & (npapers > 0)  # bundles that use and feed the trackers

        levels = torch.tensor(self.levels, dtype=torch.float64, device=rewards.device)
        q_bundle = masked_quantile(scores, npapers, levels)  # [nb, L]
        q_tracked = q_bundle.clone()
        pooled: list[tuple[str, QuantileTracker, Tensor]] = []
        for t, name in enumerate(names):
            sel = full & (bundles.task == t)
            s_t = scores[sel][valid[sel]]  # [m] this task's full-bundle paper scores
            tracker = self.tracker(name)
            if not tracker.initialized and s_t.numel() > 0:
                tracker.initialize(s_t)
            if tracker.initialized:
                q_tracked[sel] = tracker.estimates.to(device=scores.device, dtype=scores.dtype)
            pooled.append((name, tracker, s_t))
        if cfg.quantile_source == "tracked":
            q = q_tracked
        elif cfg.quantile_source == "bundle":
            q = q_bundle
        else:
            q = 0.5 * (q_tracked + q_bundle)

        adv_paper = paper_advantage(scores, valid, q, cfg)  # [nb, n]
        paired = col < npapers[bundles.bundle][:, None]  # [P, n] in paper order
        adv_paired = adv_paper[bundles.bundle] * credit_factor(cfg, rewards, mask, r_paired, bundles)
        adv_paired = torch.where(paired, adv_paired, torch.zeros_like(adv_paired))
        adv = torch.zeros_like(rewards).scatter_(1, order, adv_paired)  # back to response order

        tracked_before = {name: tr.estimates.clone() for name, tr, _ in pooled if tr.initialized}
        for _, tracker, s_t in pooled:
            tracker.update(s_t)
        self.last_order, self.last_bundles = order, bundles
        self._log(adv, mask, scores[full][valid[full]], bundles, npapers, paired, q[:, :2], tracked_before)
        return adv

    def _log(
        self,
        adv: Tensor,
        mask: Tensor,
        pooled: Tensor,
        bundles: Bundles,
        npapers: Tensor,
        paired: Tensor,
        ab: Tensor,
        tracked_before: dict[str, Tensor],
    ) -> None:
        """Fill `metrics`: device statistics are gathered into one tensor and copied to the host once."""
        cfg = self.config
        valid_adv = adv[mask].to(torch.float64)
        zero = valid_adv.new_zeros(())
        risk = risk_measures(pooled.to(torch.float64), cfg.alpha, cfg.beta, cfg.w_mix)
        has_adv = valid_adv.numel() > 0
        device_stats = {
            "batch/q_alpha": risk[0],
            "batch/q_beta": risk[1],
            "bundle_score/cvar": risk[2],
            "bundle_score/rvar": risk[3],
            "bundle_score/mvar": risk[4],
            "bundle_score/mean": risk[5],
            "used/a_mean": ab[:, 0].to(torch.float64).mean() if ab.numel() else zero,
            "used/b_mean": ab[:, 1].to(torch.float64).mean() if ab.numel() else zero,
            "adv/mean": valid_adv.mean() if has_adv else zero,
            "adv/std": valid_adv.std() if valid_adv.numel() > 1 else zero,
            "adv/min": valid_adv.min() if has_adv else zero,
            "adv/max": valid_adv.max() if has_adv else zero,
            "zero_adv_frac": (valid_adv == 0).to(torch.float64).mean() if has_adv else zero,
            "unpaired_responses": (mask.sum() - paired.sum()).to(torch.float64),
            "partial_bundles": bundles.partial.sum().to(torch.float64),
            "papers": npapers.sum().to(torch.float64),
        }
        values = torch.stack(list(device_stats.values())).cpu().tolist()
        metrics = dict(zip(device_stats, values))
        metrics["bundles"] = float(bundles.num)
        for key, est in tracked_before.items():
            prefix = "tracked/" if key == "all" else f"tracked/{key}/"
            est_list = est.cpu().tolist()
            metrics[prefix + "q_alpha"], metrics[prefix + "q_beta"] = est_list[0], est_list[1]
            for u, v in zip(cfg.track_grid, est_list[2:]):
                metrics[f"{prefix}q@{u:g}"] = v
            metrics[prefix + "lr_q"] = self.trackers[key].lr_at(self.trackers[key].count - 1)
        self.metrics = metrics

    def state_dict(self) -> dict[str, Any]:
        """Tracker states and pairing RNG: everything needed to reproduce the next call exactly."""
        return {
            "trackers": {k: t.state_dict() for k, t in self.trackers.items()},
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trackers = {}
        for key, tstate in state["trackers"].items():
            self.tracker(key).load_state_dict(tstate)
        self.generator.set_state(state["generator"])
