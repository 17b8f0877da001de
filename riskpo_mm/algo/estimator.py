"""`RiskPOEstimator`: rewards of a step -> per-response RiskPO advantages (docs/method.md sections 3-6).

One call = one training step: bundle the prompts, pair responses into papers, take quantiles
(tracked / per bundle / mix), compute paper advantages, hand them to responses, then advance the
quantile trackers. Tensor ops only; the only Python loop is over the step's task labels.
The common case (no mask, one task) skips every masking op, sorts the pooled paper scores once
(tracker initialisation, tracker update and the logged risk measures all read that sort) and copies
the metrics to the host in one transfer.
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
        rewards, mask = _check_rewards(rewards, mask, "RiskPOEstimator")  # mask None: every response valid
        num_prompts, n = rewards.shape
        device = rewards.device
        if cfg.bundle_by == "task" and groups is not None:
            tid, names = task_ids(groups, num_prompts, device)
            bundles = make_bundles(tid, names, cfg.bundle_size)
        else:
            names, bundles = ["all"], order_bundles(num_prompts, cfg.bundle_size, device)
        order = pair_order(mask, cfg.pairing, self.generator, (num_prompts, n), device)  # [P, n]
        in_order = mask is None and cfg.pairing == "positional"  # paper j = response j
        r_paired = rewards if in_order else rewards.gather(1, order)  # [P, n] column j = response in paper j
        scores = to_bundle_grid(r_paired, bundles).sum(1)  # [nb, n] paper scores S

        # Papers per bundle; `valid` ([nb, n]) stays None when every paper counts. `full` selects the bundles
        # that use and feed the trackers: a slice (no sync, no masking op) when they are known to be a prefix.
        if mask is None:
            npapers, valid = None, None
            full = slice(0, bundles.num - bundles.num_partial) if bundles.contiguous else ~bundles.partial
        else:
            npapers = papers_per_bundle(mask, bundles)  # [nb]
            valid = torch.arange(n, device=device) < npapers[:, None]
            full = ~bundles.partial & (npapers > 0)

        # Tracker initialisation from this step's pooled full-bundle scores, sorted once per task.
        pooled: list[tuple[str, QuantileTracker, Tensor]] = []  # (task, tracker, sorted float64 scores)
        for t, name in enumerate(names):
            sel = full if len(names) == 1 else (bundles.task == t) & full
            s_t = scores[sel] if valid is None else scores[sel][valid[sel]]
            s_t = torch.sort(s_t.reshape(-1).to(torch.float64)).values  # [m]
            tracker = self.tracker(name)
            if not tracker.initialized and s_t.numel() > 0:
                tracker.initialize_sorted(s_t)
            pooled.append((name, tracker, s_t))

        q = self._quantiles(scores, npapers, full, bundles, pooled)  # [nb or 1, La]
        adv_paper = paper_advantage(scores, valid, q, cfg)  # [nb, n]
        factor = credit_factor(cfg, rewards, mask, r_paired, bundles)  # [P, n], [P, 1] or None
        adv = self._to_responses(adv_paper, factor, order, in_order, bundles, npapers)

        tracked_before = [(name, tr.estimates) for name, tr, _ in pooled if tr.initialized]
        for _, tracker, s_t in pooled:
            tracker.update_sorted(s_t)
        self.last_order, self.last_bundles = order, bundles
        if len(pooled) == 1:
            all_pooled = pooled[0][2]  # [m] sorted float64 scores of every full bundle
        else:
            all_pooled = torch.sort(torch.cat([s for _, _, s in pooled] or [scores.new_zeros(0, dtype=torch.float64)])).values
        self._log(adv, mask, all_pooled, bundles, npapers, q[:, :2], tracked_before)
        return adv

    def _quantiles(self, scores: Tensor, npapers: Optional[Tensor], full: Tensor | slice, bundles: Bundles, pooled: list) -> Tensor:
        """Quantile values a, b (and the grid for tracked_mean) per bundle: [nb, La], or [1, La] shared by all."""
        cfg, la = self.config, len(self.adv_levels)
        if cfg.quantile_source == "tracked" and isinstance(full, slice) and pooled[0][1].initialized:
            est = pooled[0][1].estimates[:la].to(device=scores.device, dtype=scores.dtype)  # [La]
            if full.stop == scores.shape[0]:
                return est[None]  # every bundle is scored against the tracker
            rest = self._bundle_quantiles(scores[full.stop :], None)  # the trailing partial bundle: its own
            return torch.cat([est.expand(full.stop, la), rest])
        q_bundle = self._bundle_quantiles(scores, npapers)  # [nb, La]
        if cfg.quantile_source == "bundle":
            return q_bundle
        q_tracked = q_bundle.clone()
        for t, (_, tracker, _) in enumerate(pooled):
            if tracker.initialized:
                sel = full if len(pooled) == 1 else (bundles.task == t) & full
                q_tracked[sel] = tracker.estimates[:la].to(device=scores.device, dtype=scores.dtype)
        return q_tracked if cfg.quantile_source == "tracked" else 0.5 * (q_tracked + q_bundle)

    def _bundle_quantiles(self, scores: Tensor, npapers: Optional[Tensor]) -> Tensor:
        """Each bundle's own empirical quantiles of its paper scores at `adv_levels`: [nb, n] -> [nb, La]."""
        if npapers is not None:
            levels = torch.tensor(self.adv_levels, dtype=torch.float64, device=scores.device)
            return masked_quantile(scores, npapers, levels)
        if scores.shape[1] == 0:
            return scores.new_zeros(scores.shape[0], len(self.adv_levels))
        return sorted_quantile(torch.sort(scores, dim=1).values, self.adv_levels)

    @staticmethod
    def _to_responses(
        adv_paper: Tensor, factor: Optional[Tensor], order: Tensor, in_order: bool, bundles: Bundles, npapers: Optional[Tensor]
    ) -> Tensor:
        """Paper advantages `[nb, n]` -> response advantages `[P, n]` in response order (unpaired: 0)."""
        nb, n = adv_paper.shape
        if bundles.dense and factor is None and npapers is None and not in_order:
            # uniform credit, every response paired: scatter each paper's A straight to its B responses
            out = torch.empty(bundles.num * bundles.bundle_size, n, dtype=adv_paper.dtype, device=adv_paper.device)
            grid = adv_paper[:, None, :].expand(nb, bundles.bundle_size, n)
            return out.view_as(grid).scatter_(2, order.view_as(grid), grid).view_as(out)
        adv = adv_paper.index_select(0, bundles.bundle)  # [P, n] in paper order
        if factor is not None:
            adv = adv * factor
        if npapers is not None:
            paired = torch.arange(n, device=adv.device) < npapers[bundles.bundle][:, None]  # [P, n]
            adv = torch.where(paired, adv, 0.0)
        return adv if in_order else torch.empty_like(adv).scatter_(1, order, adv)  # order: a permutation per row

    def _log(
        self,
        adv: Tensor,
        mask: Optional[Tensor],
        pooled: Tensor,
        bundles: Bundles,
        npapers: Optional[Tensor],
        ab: Tensor,
        tracked_before: list[tuple[str, Tensor]],
    ) -> None:
        """Fill `metrics`: device statistics go into one float64 vector, copied to the host once."""
        cfg = self.config
        n = adv.shape[1]
        valid_adv = (adv if mask is None else adv[mask]).reshape(-1).to(torch.float64)
        count, m = valid_adv.numel(), pooled.numel()
        parts: list[Tensor] = []
        if m:
            parts.append(torch.mv(tail_weights(m, cfg.alpha, cfg.beta, pooled.dtype, pooled.device), pooled))  # [5]
        if ab.shape[0]:
            parts.append(ab[0] if ab.shape[0] == 1 else ab.to(torch.float64).sum(0))
        if count:
            total = valid_adv.sum()
            dev = valid_adv - total / count
            lo_hi = torch.aminmax(valid_adv)
            parts.append(torch.stack([total, torch.dot(dev, dev), lo_hi.min, lo_hi.max, valid_adv.bool().sum()]))
        if mask is not None:
            parts.append(torch.stack([mask.sum(), npapers[bundles.bundle].sum(), npapers.sum()]))
        parts += [est for _, est in tracked_before]
        host = torch.cat([p.to(device=pooled.device, dtype=torch.float64) for p in parts]).tolist() if parts else []

        values = iter(host)
        metrics: dict[str, float] = {}
        q_a, q_b, cvar, rvar, mean = [next(values) for _ in range(5)] if m else [0.0] * 5
        metrics["batch/q_alpha"], metrics["batch/q_beta"] = q_a, q_b
        metrics["bundle_score/cvar"], metrics["bundle_score/rvar"] = cvar, rvar
        metrics["bundle_score/mvar"] = (cfg.w_mix * cvar + rvar) / (cfg.w_mix + 1.0) if m else 0.0
        metrics["bundle_score/mean"] = mean
        metrics["used/a_mean"], metrics["used/b_mean"] = [next(values) / ab.shape[0] for _ in range(2)] if ab.shape[0] else [0.0, 0.0]
        if count:
            total, sq_dev, lo, hi, nonzero = (next(values) for _ in range(5))
            metrics["adv/mean"] = total / count
            metrics["adv/std"] = math.sqrt(sq_dev / (count - 1)) if count > 1 else 0.0
            metrics["adv/min"], metrics["adv/max"] = lo, hi
            metrics["zero_adv_frac"] = (count - nonzero) / count
        else:
            metrics.update({"adv/mean": 0.0, "adv/std": 0.0, "adv/min": 0.0, "adv/max": 0.0, "zero_adv_frac": 0.0})
        if mask is None:
            metrics["unpaired_responses"], papers = 0.0, float(bundles.num * n)
        else:
            num_valid, num_paired, papers = (next(values) for _ in range(3))
            metrics["unpaired_responses"] = num_valid - num_paired
        metrics["partial_bundles"] = float(bundles.num_partial)
        metrics["papers"] = papers
        metrics["bundles"] = float(bundles.num)
        for key, _ in tracked_before:
            if key not in self._tracked_keys:
                prefix = "tracked/" if key == "all" else f"tracked/{key}/"
                self._tracked_keys[key] = (prefix, [prefix + "q_alpha", prefix + "q_beta", *(f"{prefix}q@{u:g}" for u in cfg.track_grid)])
            prefix, names = self._tracked_keys[key]
            metrics.update(zip(names, (next(values) for _ in names)))
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
