"""`RiskPOEstimator`: rewards of a step -> per-response RiskPO advantages (docs/method.md sections 3-6).

One call = one training step: bundle the prompts, pair responses into papers, take quantiles
(tracked / per bundle / mix), compute paper advantages, hand them to responses, then advance the
quantile trackers. Tensor ops only; the only Python loop is over the step's task labels. Every
step takes the same path (masks are always materialised); the pooled paper scores are sorted once
per task, and the metrics reach the host in one transfer.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from riskpo_mm.algo.advantage import credit_factor, paper_advantage
from riskpo_mm.algo.bundles import Bundles, make_bundles, order_bundles, task_ids, to_bundle_grid
from riskpo_mm.algo.config import RiskPOConfig
from riskpo_mm.algo.pairing import pair_order, papers_per_bundle
from riskpo_mm.algo.quantiles import QuantileTracker, masked_quantile, sorted_quantile, tail_weights


def _check_rewards(rewards: Tensor, mask: Optional[Tensor], who: str) -> tuple[Tensor, Optional[Tensor]]:
    """Validate `rewards: [P, n]` float and `mask: [P, n]` bool (or None).

    Returns (rewards with invalid responses set to 0, mask on the rewards' device or None).
    """
    if not isinstance(rewards, Tensor) or rewards.dim() != 2 or not rewards.is_floating_point():
        got = f"{tuple(rewards.shape)} {rewards.dtype}" if isinstance(rewards, Tensor) else type(rewards).__name__
        raise ValueError(f"{who}.advantages: rewards must be a float tensor [P, n], got {got}")
    if mask is not None:
        if mask.shape != rewards.shape or mask.dtype != torch.bool:
            raise ValueError(f"{who}.advantages: mask must be a bool tensor of shape {tuple(rewards.shape)}, got {tuple(mask.shape)} {mask.dtype}")
        mask = mask.to(rewards.device)
        rewards = torch.where(mask, rewards, 0.0)
    # One reduction and one host read; the elementwise test only runs when the sum is not finite (NaN/inf or overflow).
    if not math.isfinite(float(rewards.sum())) and not bool(torch.isfinite(rewards).all()):
        raise ValueError(f"{who}.advantages: rewards contain NaN or inf at valid responses")
    return rewards, mask


def check_inputs(rewards: Tensor, mask: Optional[Tensor], who: str) -> Tensor:
    """Validate `rewards: [P, n]` float and `mask: [P, n]` bool; returns the mask (all True if None)."""
    mask = _check_rewards(rewards, mask, who)[1]
    return torch.ones_like(rewards, dtype=torch.bool) if mask is None else mask


def risk_measures(scores: Tensor, alpha: float, beta: float, w_mix: float) -> Tensor:
    """Empirical [VaR_alpha, VaR_beta, CVaR_alpha, RVaR_alpha:beta, MVaR, mean] of the scores `[m]`.

    VaRs interpolate linearly (numpy.quantile); CVaR and RVaR integrate the empirical step quantile function.
    """
    if scores.numel() == 0:
        return scores.new_zeros(6)
    s = torch.sort(scores.reshape(-1)).values
    var = sorted_quantile(s, (alpha, beta))  # [2] exact interpolation
    cvar, rvar, mean = torch.mv(tail_weights(s.numel(), alpha, beta, s.dtype, s.device)[2:], s)
    return torch.cat([var, torch.stack([cvar, rvar, (w_mix * cvar + rvar) / (w_mix + 1.0), mean])])


class RiskPOEstimator:
    """RiskPO advantages with its own pairing RNG and per-task quantile trackers.

    advantages(rewards [P, n], groups=None, mask=None) -> [P, n], rows in batch order; `groups` is the
    task label per prompt (used when bundle_by="task"); `mask` marks valid responses (unequal counts);
    invalid and unpaired responses get advantage 0. After each call: `metrics` (floats),
    `last_order` ([P, n] paper order used for pairing) and `last_bundles`.
    """

    name = "riskpo"
    Options = RiskPOConfig
    keep: Optional[Tensor] = None  # every prompt trains

    def __init__(self, config: Optional[RiskPOConfig] = None, seed: int = 0) -> None:
        self.config = config if config is not None else RiskPOConfig()
        self.levels: list[float] = [self.config.alpha, self.config.beta, *self.config.track_grid]
        # levels the advantage reads: a and b, plus the grid for the tracked_mean baseline
        self.adv_levels = tuple(self.levels if self.config.baseline == "tracked_mean" else self.levels[:2])
        self.generator = torch.Generator().manual_seed(seed)
        self.trackers: dict[str, QuantileTracker] = {}
        self.metrics: dict[str, float] = {}
        self.last_order: Optional[Tensor] = None
        self.last_bundles: Optional[Bundles] = None
        self._tracked_keys: dict[str, tuple[str, list[str]]] = {}  # task -> (prefix, metric names of its levels)

    def tracker(self, key: str = "all") -> QuantileTracker:
        """The tracker of a task label ("all" when bundle_by="order"), created on first use."""
        if key not in self.trackers:
            # alpha/beta and the grid rearrange apart: logging levels never change the advantage
            self.trackers[key] = QuantileTracker(self.levels, self.config.lr_q, self.config.lr_q_decay,
                                                 blocks=(2, len(self.levels) - 2))
        return self.trackers[key]

    @torch.no_grad()
    def advantages(self, rewards: Tensor, groups: Optional[Sequence] = None, mask: Optional[Tensor] = None) -> Tensor:
        cfg = self.config
        rewards, mask = _check_rewards(rewards, mask, "RiskPOEstimator")
        num_prompts, n = rewards.shape
        device = rewards.device
        all_valid = mask is None
        mask = torch.ones_like(rewards, dtype=torch.bool) if mask is None else mask  # [P, n]
        if cfg.bundle_by == "task" and groups is not None:
            tid, names = task_ids(groups, num_prompts, device)
            bundles = make_bundles(tid, names, cfg.bundle_size)
        else:
            names, bundles = ["all"], order_bundles(num_prompts, cfg.bundle_size, device)
        order = pair_order(None if all_valid else mask, cfg.pairing, self.generator, (num_prompts, n), device)  # [P, n]
        r_paired = rewards.gather(1, order)  # [P, n]: column j = the response in paper j
        scores = to_bundle_grid(r_paired, bundles).sum(1)  # [nb, n] paper scores S
        npapers = papers_per_bundle(mask, bundles)  # [nb]
        valid = torch.arange(n, device=device) < npapers[:, None]  # [nb, n] papers that exist
        full = ~bundles.partial & (npapers > 0)  # [nb] bundles that use and feed the trackers

        # Each task's pooled full-bundle scores, sorted once: tracker initialisation, update and logging read them.
        pooled: list[tuple[QuantileTracker, Tensor, Tensor]] = []  # (tracker, bundles of the task, sorted scores)
        for t, name in enumerate(names):
            sel = full & (bundles.task == t)  # [nb]
            s_t = torch.sort(scores[sel][valid[sel]].to(torch.float64)).values  # [m]
            tracker = self.tracker(name)
            if not tracker.initialized and s_t.numel() > 0:
                tracker.initialize_sorted(s_t)
            pooled.append((tracker, sel, s_t))

        q = self._quantiles(scores, npapers, pooled)  # [nb, La]
        adv_paper = paper_advantage(scores, valid, q, cfg)  # [nb, n]
        factor = credit_factor(cfg, rewards, None if all_valid else mask, r_paired, bundles)  # [P, n], [P, 1] or None
        adv = adv_paper.index_select(0, bundles.bundle)  # [P, n] in paper order
        if factor is not None:
            adv = adv * factor
        paired = valid.index_select(0, bundles.bundle)  # [P, n] in paper order
        adv = torch.where(paired, adv, 0.0)  # unpaired responses: 0
        if cfg.center == "prompt":  # per-question baseline over the paired responses
            mean = adv.sum(1, keepdim=True) / paired.sum(1, keepdim=True).clamp(min=1)  # [P, 1]
            adv = torch.where(paired, adv - mean, 0.0)
        adv = torch.empty_like(adv).scatter_(1, order, adv)  # back to response order

        tracked_before = {name: tr.estimates for name, (tr, _, _) in zip(names, pooled) if tr.initialized}
        for tracker, _, s_t in pooled:
            tracker.update_sorted(s_t)
        self.last_order, self.last_bundles = order, bundles
        all_pooled = torch.sort(torch.cat([scores.new_zeros(0, dtype=torch.float64), *(s for _, _, s in pooled)])).values  # [m]
        self._log(adv, mask, all_pooled, bundles, npapers, q[:, :2], tracked_before)
        return adv

    def _quantiles(self, scores: Tensor, npapers: Tensor, pooled: list) -> Tensor:
        """Quantile values a, b (and the grid for tracked_mean) per bundle: [nb, La].

        bundle: each bundle's own; tracked: the task's tracker for full bundles (a partial bundle, or a
        task whose tracker is not initialised, uses its own); mix: the mean of the two.
        """
        cfg, la = self.config, len(self.adv_levels)
        levels = torch.tensor(self.adv_levels, dtype=torch.float64, device=scores.device)
        tracked = [(tr.estimates[:la].to(device=scores.device, dtype=scores.dtype), sel)
                   for tr, sel, _ in pooled if tr.initialized]
        covered = sum(int(sel.sum()) for _, sel in tracked)  # bundles a tracker scores
        if cfg.quantile_source == "tracked" and covered == scores.shape[0]:
            q = scores.new_empty(scores.shape[0], la)  # every bundle scored against its task's tracker
            for est, sel in tracked:
                q[sel] = est
            return q
        q_bundle = masked_quantile(scores, npapers, levels).to(scores.dtype)  # [nb, La]
        if cfg.quantile_source == "bundle":
            return q_bundle
        q_tracked = q_bundle.clone()
        for est, sel in tracked:
            q_tracked[sel] = est
        return q_tracked if cfg.quantile_source == "tracked" else 0.5 * (q_tracked + q_bundle)

    def _log(self, adv: Tensor, mask: Tensor, pooled: Tensor, bundles: Bundles, npapers: Tensor, ab: Tensor,
             tracked_before: dict[str, Tensor]) -> None:
        """Fill `metrics` from named device scalars, copied to the host in one transfer."""
        cfg = self.config
        valid_adv = adv[mask].to(torch.float64)  # [count]
        zero = valid_adv.new_zeros(())
        risk = (torch.mv(tail_weights(pooled.numel(), cfg.alpha, cfg.beta, pooled.dtype, pooled.device), pooled)
                if pooled.numel() else pooled.new_zeros(5))  # [VaR_a, VaR_b, CVaR, RVaR, mean]
        count = valid_adv.numel()
        values: dict[str, Tensor] = {
            "batch/q_alpha": risk[0], "batch/q_beta": risk[1],
            "bundle_score/cvar": risk[2], "bundle_score/rvar": risk[3],
            "bundle_score/mvar": (cfg.w_mix * risk[2] + risk[3]) / (cfg.w_mix + 1.0) if pooled.numel() else zero,
            "bundle_score/mean": risk[4],
            "used/a_mean": ab[:, 0].mean() if ab.shape[0] else zero, "used/b_mean": ab[:, 1].mean() if ab.shape[0] else zero,
            "adv/mean": valid_adv.mean() if count else zero,
            "adv/std": valid_adv.std() if count > 1 else zero,
            "adv/min": valid_adv.min() if count else zero, "adv/max": valid_adv.max() if count else zero,
            "zero_adv_frac": (valid_adv == 0).to(torch.float64).mean() if count else zero,
            "unpaired_responses": (mask.sum() - npapers[bundles.bundle].sum()).to(torch.float64),
            "papers": npapers.sum().to(torch.float64),
        }
        for key, est in tracked_before.items():
            prefix = "tracked/" if key == "all" else f"tracked/{key}/"
            names = [prefix + "q_alpha", prefix + "q_beta", *(f"{prefix}q@{u:g}" for u in cfg.track_grid)]
            values.update(zip(names, est))
        host = torch.stack([v.to(pooled.device) for v in values.values()]).to(torch.float64).tolist()
        self.metrics = dict(zip(values, host))
        self.metrics["partial_bundles"] = float(bundles.num_partial)
        self.metrics["bundles"] = float(bundles.num)
        for key in tracked_before:
            prefix = "tracked/" if key == "all" else f"tracked/{key}/"
            self.metrics[prefix + "lr_q"] = self.trackers[key].lr_at(self.trackers[key].count - 1)

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
