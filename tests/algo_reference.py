"""Slow reference of the RiskPO estimator, written from docs/method.md with plain Python loops.

One bundle and one paper at a time, Python floats (float64). It shares no code with
riskpo_mm.algo. Random pairing is reproduced by passing the paper orders the fast path drew.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

STD_FLOOR = 1e-3
EPS = 1e-6


def quantile(values: Sequence[float], u: float) -> float:
    """Empirical quantile with linear interpolation (numpy.quantile's default definition)."""
    s = sorted(values)
    h = (len(s) - 1) * u
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def std_or_one(values: Sequence[float]) -> float:
    """Unbiased std; 1.0 for fewer than 2 values or a std <= 1e-3."""
    if len(values) < 2:
        return 1.0
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    sd = math.sqrt(var)
    return sd if sd > STD_FLOOR else 1.0


def trapezoid(ys: Sequence[float], xs: Sequence[float]) -> float:
    total = 0.0
    for i in range(1, len(xs)):
        total += (xs[i] - xs[i - 1]) * (ys[i] + ys[i - 1]) / 2
    return total


def relu(x: float) -> float:
    return x if x > 0 else 0.0


def paper_adv(s: float, q: list[float], cfg, scale: float) -> float:
    """docs/method.md section 5 for one paper score s, quantile values q = [a, b, *grid]."""
    a, b = q[0], q[1]
    c = 1.0 if cfg.baseline == "natural" else 0.0
    g = relu(s - a) - relu(s - b) + c * (a - b)
    cv = -relu(a - s)
    if cfg.baseline == "tracked_mean":
        grid_q = q[2:]
        g -= trapezoid([relu(x - a) - relu(x - b) for x in grid_q], cfg.track_grid)
        cv -= trapezoid([-relu(a - x) for x in grid_q], cfg.track_grid)
    a_rvar = g / (cfg.beta - cfg.alpha + EPS)
    a_cvar = cv / (cfg.alpha + EPS)
    if cfg.objective == "mvar":
        adv = (cfg.w_mix * a_cvar + a_rvar) / (cfg.w_mix + 1)
    elif cfg.objective == "rvar":
        adv = a_rvar
    else:
        a_up = relu(s - b) / (1 - cfg.beta + EPS)
        adv = (cfg.upper_weight * a_up + a_rvar) / (cfg.upper_weight + 1)
    return adv / scale


def reference_advantages(
    rewards: list[list[float]],
    cfg,
    groups: Optional[Sequence] = None,
    mask: Optional[list[list[bool]]] = None,
    orders: Optional[list[list[int]]] = None,
    trackers: Optional[dict] = None,
) -> list[list[float]]:
    """Advantages [P][n]. trackers: {task: {"q": [L floats] or None, "count": int}} updated in place.

    orders[p] (random pairing) lists prompt p's responses in paper order, valid ones first.
    """
    P, n = len(rewards), len(rewards[0])
    mask = mask or [[True] * n for _ in range(P)]
    trackers = {} if trackers is None else trackers
    levels = [cfg.alpha, cfg.beta, *cfg.track_grid]
    B = cfg.bundle_size

    # bundles: per task (or one "all" task), consecutive prompts in batch order
    labels = [str(g) for g in groups] if (cfg.bundle_by == "task" and groups is not None) else ["all"] * P
    bundles = []
    for task in sorted(set(labels)):
        members = [p for p in range(P) if labels[p] == task]
        for i in range(0, len(members), B):
            bundles.append((task, members[i : i + B]))

    # pairing and paper scores
    paper_order = {}
    for p in range(P):
        valid = [j for j in range(n) if mask[p][j]]
        if cfg.pairing == "random":
            given = list(orders[p][: len(valid)])
            assert sorted(given) == valid, "orders must list the valid responses first"
            paper_order[p] = given
        else:
            paper_order[p] = valid
    info = []
    for task, members in bundles:
        m = min(len(paper_order[p]) for p in members)
        scores = []
        for j in range(m):
            total = 0.0
            for p in members:
                total += rewards[p][paper_order[p][j]]
            scores.append(total)
        full = len(members) == B and m > 0
        info.append((task, members, m, scores, full))

    # trackers: first step initialises from the pooled full-bundle scores of the task
    pooled = {}
    for task, members, m, scores, full in info:
        if full:
            pooled.setdefault(task, []).extend(scores)
    for task, scores in pooled.items():
        state = trackers.setdefault(task, {"q": None, "count": 0})
        if state["q"] is None:
            state["q"] = [quantile(scores, u) for u in levels]

    adv = [[0.0] * n for _ in range(P)]
    for task, members, m, scores, full in info:
        if m == 0:
            continue
        q_bundle = [quantile(scores, u) for u in levels]
        state = trackers.get(task)
        q_tracked = list(state["q"]) if (full and state is not None and state["q"] is not None) else q_bundle
        if cfg.quantile_source == "bundle":
            q = q_bundle
        elif cfg.quantile_source == "tracked":
            q = q_tracked
        else:
            q = [(x + y) / 2 for x, y in zip(q_tracked, q_bundle)]
        scale = std_or_one(scores) if cfg.scale == "bundle_std" else 1.0
        for j in range(m):
            a_paper = paper_adv(scores[j], q, cfg, scale)
            if cfg.credit == "sum_mean":
                devs = []
                for p in members:
                    rs = [rewards[p][k] for k in range(n) if mask[p][k]]
                    devs.append(rewards[p][paper_order[p][j]] - sum(rs) / len(rs))
                dsum = sum(devs)
            for i, p in enumerate(members):
                r = rewards[p][paper_order[p][j]]
                if cfg.credit == "uniform":
                    a_resp = a_paper
                elif cfg.credit == "question_std":
                    a_resp = a_paper / std_or_one([rewards[p][k] for k in range(n) if mask[p][k]])
                elif cfg.credit == "score":
                    a_resp = a_paper * (0.5 if r > 0 else 1.5)
                else:
                    a_resp = a_paper * devs[i] / dsum if abs(dsum) > EPS else a_paper / len(members)
                adv[p][paper_order[p][j]] = a_resp
        if cfg.center == "prompt":
            for p in members:
                paired = paper_order[p][:m]
                mean = sum(adv[p][k] for k in paired) / len(paired)
                for k in paired:
                    adv[p][k] -= mean

    # tracker step with this step's pooled scores
    for task, scores in pooled.items():
        state = trackers[task]
        lr = cfg.lr_q / (1 + state["count"]) ** cfg.lr_q_decay
        new_q = []
        for u, qv in zip(levels, state["q"]):
            below = sum(1 for s in scores if s < qv) / len(scores)
            new_q.append(qv + lr * (u - below))
        # monotone rearrangement, separately for [alpha, beta] and for the logging grid
        for block in (range(0, 2), range(2, len(levels))):
            ranked = sorted(block, key=lambda i: levels[i])
            values = sorted(new_q[i] for i in ranked)
            for i, v in zip(ranked, values):
                new_q[i] = v
        state["q"] = new_q
        state["count"] += 1
    return adv
