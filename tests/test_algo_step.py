"""The engine-neutral advantage step: the estimator's advantages, DAPO's keep mask, reward shaping,
one set of metric names, and state that survives a checkpoint."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from riskpo_mm.algo import AdvantageStep, RiskPOConfig, build_estimator
from riskpo_mm.algo.step import overlong_penalty


def _rewards(P: int = 10, n: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (P, n), generator=g).double()


@pytest.mark.parametrize("name", ["riskpo", "grpo", "dr_grpo"])
def test_step_advantages_are_the_estimators_and_keep_every_response(name):
    rewards, tasks = _rewards(), ["math"] * 10
    step = AdvantageStep(name, RiskPOConfig(), seed=3)
    result = step(rewards, tasks)
    expected = build_estimator(name, RiskPOConfig() if name == "riskpo" else None, seed=3).advantages(rewards, groups=tasks)
    torch.testing.assert_close(result.advantages, expected)
    assert result.keep.all()


def test_dapo_keep_mask_drops_prompts_whose_rewards_all_tie():
    rewards = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    result = AdvantageStep("dapo")(rewards, ["m"] * 3)
    assert result.keep.tolist() == [[False, False], [True, True], [False, False]]
    assert (result.advantages[~result.keep] == 0).all()


def test_grpo_runs_log_the_same_bundle_risk_measures_as_riskpo_runs():
    rewards, tasks = _rewards(), ["math"] * 10
    grpo = AdvantageStep("grpo", RiskPOConfig(), seed=1)(rewards, tasks).metrics
    riskpo = AdvantageStep("riskpo", RiskPOConfig(), seed=1)(rewards, tasks).metrics
    bundle = {k for k in riskpo if k.startswith("bundle/")}
    assert bundle and bundle <= set(grpo)
    assert all(grpo[k] == riskpo[k] for k in bundle)


def test_metrics_have_one_name_per_quantity_per_task():
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    m = AdvantageStep("grpo")(rewards, ["math", "geometry"], lengths=torch.tensor([[3.0, 5.0], [4.0, 8.0]]),
                              accuracy=rewards, format_ok=torch.ones(2, 2), truncated=torch.tensor([[0, 1], [0, 0]])).metrics
    assert m["reward/mean"] == 0.75 and m["reward/math"] == 0.5 and m["reward/geometry"] == 1.0
    assert m["accuracy/mean"] == 0.75 and m["format/mean"] == 1.0
    assert m["response_length/mean"] == 5.0 and m["response_length/max"] == 8.0
    assert m["response/truncated_fraction"] == 0.25
    assert "grpo/adv/mean" in m and "advantage/zero_fraction" in m


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 64), min_size=1, max_size=12), st.integers(1, 16), st.floats(0, 2))
def test_overlong_penalty_matches_dapos_piecewise_rule(lengths, buffer, factor):
    max_new = 64
    buffer = min(buffer, max_new - 1)
    got = overlong_penalty(torch.tensor([lengths], dtype=torch.float64), max_new, buffer, factor)[0].tolist()
    for L, p in zip(lengths, got):
        start = max_new - buffer
        want = 0.0 if L <= start else (-factor if L >= max_new else (start - L) / buffer * factor)
        assert p == pytest.approx(want, abs=1e-12)


def test_shaping_applies_the_overlong_penalty_then_the_clip_range():
    step = AdvantageStep("grpo", clip_range=(-0.5, 1.0), overlong_buffer=4, overlong_factor=1.0, max_new_tokens=8)
    shaped = step.shape(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[4.0, 6.0, 8.0]]))
    assert shaped.tolist() == [[1.0, 0.5, -0.5]]
    with pytest.raises(ValueError, match="needs response lengths"):
        step(torch.ones(1, 2), ["m"])


def test_step_state_restores_trackers_and_pairing_rng_for_every_estimator():
    for name in ("riskpo", "grpo"):
        a = AdvantageStep(name, RiskPOConfig(), seed=5)
        a(_rewards(seed=1), ["m"] * 10)
        b = AdvantageStep(name, RiskPOConfig(), seed=99)
        b.load_state_dict(a.state_dict())
        ra, rb = a(_rewards(seed=2), ["m"] * 10), b(_rewards(seed=2), ["m"] * 10)
        torch.testing.assert_close(ra.advantages, rb.advantages)
        assert ra.metrics == rb.metrics
