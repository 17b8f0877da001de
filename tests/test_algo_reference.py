"""The vectorised estimator matches the slow loop reference (tests/algo_reference.py) to 1e-6."""

from __future__ import annotations

import copy
import itertools
import os
import sys
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))
from algo_reference import quantile, reference_advantages  # noqa: E402

from riskpo_mm.algo import RiskPOConfig, RiskPOEstimator  # noqa: E402

OPTIONS = dict(
    bundle_by=["order", "task"],
    quantile_source=["tracked", "bundle", "mix"],
    pairing=["random", "positional"],
    baseline=["natural", "none", "tracked_mean"],
    scale=["bundle_std", "none"],
    credit=["uniform", "question_std", "score", "sum_mean"],
    objective=["mvar", "rvar", "seeking"],
    center=["none", "prompt"],
)


def run_both(
    cfg: RiskPOConfig, steps: list[tuple[torch.Tensor, list, torch.Tensor]], seed: int = 0, pass_mask: bool = True
) -> None:
    """Feed the same steps to the estimator and the reference; compare every step's advantages.

    With pass_mask=False the estimator gets no mask (its mask-free fast path); the masks must be full.
    """
    est = RiskPOEstimator(cfg, seed=seed)
    trackers: dict = {}
    for rewards, groups, mask in steps:
        if not pass_mask:
            assert mask.all()
        fast = est.advantages(rewards, groups=groups, mask=mask if pass_mask else None)
        assert fast.dtype == rewards.dtype and torch.isfinite(fast).all()
        ref = reference_advantages(
            rewards.tolist(), cfg, groups=groups, mask=mask.tolist(), orders=est.last_order.tolist(), trackers=trackers
        )
        np.testing.assert_allclose(fast.numpy(), np.array(ref), atol=1e-6, rtol=1e-6)
        for key, state in trackers.items():
            np.testing.assert_allclose(est.trackers[key].estimates.numpy(), state["q"], atol=1e-9)


def random_step(rng: np.random.Generator, P: int, n: int, binary: bool) -> tuple[torch.Tensor, list, torch.Tensor]:
    # dyadic rewards (multiples of 1/4) keep sums exact, so ties resolve identically in both paths
    vals = rng.integers(0, 2, (P, n)) if binary else rng.integers(-8, 9, (P, n)) / 4
    mask = rng.random((P, n)) < 0.85
    mask[:, 0] = True
    groups = list(rng.choice(["geo", "math", "code"], P))
    return torch.tensor(vals, dtype=torch.float64), groups, torch.from_numpy(mask)


def test_reference_quantile_is_numpy_quantile():
    rng = np.random.default_rng(0)
    for m in range(1, 12):
        x = rng.normal(size=m)
        for u in (0.0, 0.05, 0.2, 0.5, 0.8, 0.9, 1.0):
            assert quantile(list(x), u) == pytest.approx(float(np.quantile(x, u)), abs=1e-12)


@pytest.mark.parametrize("bundle_by,quantile_source,pairing", list(itertools.product(*list(OPTIONS.values())[:3])))
def test_every_option_combination_matches_reference(bundle_by, quantile_source, pairing):
    rng = np.random.default_rng(zlib.crc32(f"{bundle_by}/{quantile_source}/{pairing}".encode()))
    steps = [random_step(rng, P=11, n=5, binary=k % 2 == 0) for k in range(2)]
    full = [(rewards, groups, torch.ones_like(mask)) for rewards, groups, mask in steps]
    for baseline, scale, credit, objective, center in itertools.product(*list(OPTIONS.values())[3:]):
        cfg = RiskPOConfig(
            bundle_size=3,
            bundle_by=bundle_by,
            quantile_source=quantile_source,
            pairing=pairing,
            baseline=baseline,
            scale=scale,
            credit=credit,
            objective=objective,
            center=center,
            lr_q=0.2,
            lr_q_decay=0.5,
        )
        run_both(cfg, steps)
        run_both(cfg, full, pass_mask=False)


@settings(deadline=None, max_examples=60)
@given(
    data=st.data(),
    P=st.integers(1, 13),
    n=st.integers(1, 6),
    B=st.integers(1, 5),
    steps=st.integers(1, 3),
    binary=st.booleans(),
    alpha_beta=st.sampled_from([(0.2, 0.8), (0.2, 0.9), (0.1, 0.5), (0.3, 0.7)]),
    seed=st.integers(0, 2**16),
)
def test_random_inputs_and_options_match_reference(data, P, n, B, steps, binary, alpha_beta, seed):
    options = {k: data.draw(st.sampled_from(v), label=k) for k, v in OPTIONS.items()}
    w_mix = data.draw(st.sampled_from([0.0, 1.5, 3.0]), label="w_mix")
    cfg = RiskPOConfig(alpha=alpha_beta[0], beta=alpha_beta[1], w_mix=w_mix, bundle_size=B, **options)
    rng = np.random.default_rng(seed)
    run_both(cfg, [random_step(rng, P, n, binary) for _ in range(steps)], seed=seed)


def test_state_dict_survives_deepcopy_and_reference_keeps_matching():
    cfg = RiskPOConfig(bundle_size=2)
    rng = np.random.default_rng(3)
    est = RiskPOEstimator(cfg, seed=5)
    est.advantages(*random_step(rng, 6, 4, True)[::2])
    clone = RiskPOEstimator(cfg, seed=99)
    clone.load_state_dict(copy.deepcopy(est.state_dict()))
    r, _, m = random_step(rng, 6, 4, True)
    assert torch.equal(est.advantages(r, mask=m), clone.advantages(r, mask=m))
