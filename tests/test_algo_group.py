"""Group estimators: GRPO, Dr.GRPO, DAPO-style (same interface as RiskPOEstimator)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from riskpo_mm.algo import build_estimator


def loop_grpo(rewards: np.ndarray, mask: np.ndarray, normalize_std: bool) -> np.ndarray:
    out = np.zeros_like(rewards)
    for p in range(rewards.shape[0]):
        idx = np.flatnonzero(mask[p])
        if len(idx) < 2:
            continue
        r = rewards[p, idx]
        adv = r - r.mean()
        out[p, idx] = adv / (r.std(ddof=1) + 1e-6) if normalize_std else adv
    return out


@pytest.mark.parametrize("name,normalize_std", [("grpo", True), ("dr_grpo", False), ("dapo", True)])
def test_group_advantages_match_loop(name, normalize_std):
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(9, 6))
    rewards[0] = 1.0  # all equal
    mask = rng.random((9, 6)) < 0.8
    mask[1] = [True] + [False] * 5  # one valid response
    est = build_estimator(name)
    adv = est.advantages(torch.from_numpy(rewards), mask=torch.from_numpy(mask))
    np.testing.assert_allclose(adv.numpy(), loop_grpo(rewards, mask, normalize_std), atol=1e-9)
    assert torch.isfinite(adv).all() and adv.dtype == torch.float64
    assert est.state_dict() == {} and set(est.metrics) >= {"adv/mean", "adv/std", "zero_adv_frac"}


def test_dapo_keeps_only_groups_whose_rewards_differ():
    est = build_estimator("dapo")
    rewards = torch.tensor([[1.0, 1, 1], [0, 0, 0], [0, 1, 0], [1, 0, 1]])
    est.advantages(rewards)
    assert est.keep.tolist() == [False, False, True, True]
    assert est.metrics["kept_fraction"] == 0.5


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_group_edge_cases_are_finite(name, dtype):
    est = build_estimator(name)
    for rewards in (torch.zeros(3, 4), torch.ones(1, 1), torch.tensor([[1e6, -1e6]]), torch.tensor([[0.0, 1e-9]])):
        adv = est.advantages(rewards.to(dtype))
        assert adv.dtype == dtype and torch.isfinite(adv).all()
