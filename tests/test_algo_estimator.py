"""RiskPO estimator: the method's test vectors, edge cases, tracker, state, metrics (docs/method.md sections 3-6, 9)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from riskpo_mm.algo import QuantileTracker, RiskPOConfig, RiskPOEstimator

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def one_bundle_advantages(scores: list[float], **options) -> torch.Tensor:
    """Advantages of one bundle whose paper scores are `scores` (a bundle of one question, B = 1)."""
    est = RiskPOEstimator(RiskPOConfig(bundle_size=1, pairing="positional", **options))
    return est.advantages(torch.tensor([scores], dtype=torch.float64))[0]


# docs/method.md section 9. It rounds 0.8433 to 0.844 and -1.8974 to -1.898; 1e-3 covers its rounding.
def test_spec_vector_1_natural_baseline_bundle_quantiles():
    adv = one_bundle_advantages([1, 2, 2, 3, 5], alpha=0.2, beta=0.9, w_mix=1.5, quantile_source="bundle")
    np.testing.assert_allclose(adv.numpy(), [-2.487, -0.829, -0.829, -0.452, 0.0], atol=1e-3)


def test_spec_vector_1_quantiles_are_1_8_and_4_2():
    est = RiskPOEstimator(RiskPOConfig(bundle_size=1, beta=0.9, quantile_source="bundle", pairing="positional"))
    est.advantages(torch.tensor([[1.0, 2, 2, 3, 5]]))
    assert est.metrics["used/a_mean"] == pytest.approx(1.8) and est.metrics["used/b_mean"] == pytest.approx(4.2)


def test_spec_vector_2_no_baseline():
    adv = one_bundle_advantages([-5, -3, -3, -1, -1, 1, 1, 3, 3, 5], baseline="none", quantile_source="bundle")
    expected = [-1.898, 0, 0, 0.422, 0.422, 0.844, 0.844, 1.265, 1.265, 1.265]
    np.testing.assert_allclose(adv.numpy(), expected, atol=1e-3)


def test_spec_vector_3_all_equal_bundle_quantiles_give_zero():
    assert torch.equal(one_bundle_advantages([0, 0, 0, 0, 0], quantile_source="bundle"), torch.zeros(5, dtype=torch.float64))


def test_spec_vector_3_all_equal_tracked_quantiles_give_minus_4_333():
    est = RiskPOEstimator(RiskPOConfig(bundle_size=1, track_grid=()))
    est.tracker().set([1.0, 3.0])
    adv = est.advantages(torch.zeros(1, 5))
    np.testing.assert_allclose(adv.numpy(), np.full((1, 5), -13 / 3), atol=1e-4)


def test_tracked_gives_lower_tail_signal_to_all_wrong_bundle_while_bundle_gives_zero():
    all_wrong = torch.zeros(5, 8)  # one bundle, every answer wrong
    tracked = RiskPOEstimator(RiskPOConfig())
    tracked.advantages((torch.rand(20, 8, generator=torch.Generator().manual_seed(0)) < 0.5).float())  # history
    assert (tracked.advantages(all_wrong) < 0).all()
    bundle = RiskPOEstimator(RiskPOConfig(quantile_source="bundle"))
    assert torch.equal(bundle.advantages(all_wrong), torch.zeros(5, 8))


@settings(deadline=None, max_examples=40)
@given(
    P=st.integers(1, 12),
    n=st.integers(1, 6),
    B=st.integers(1, 5),
    source=st.sampled_from(["tracked", "bundle", "mix"]),
    credit=st.sampled_from(["uniform", "question_std", "score"]),
    objective=st.sampled_from(["mvar", "rvar"]),
    seed=st.integers(0, 1000),
)
def test_natural_baseline_makes_all_advantages_nonpositive(P, n, B, source, credit, objective, seed):
    g = torch.Generator().manual_seed(seed)
    est = RiskPOEstimator(RiskPOConfig(bundle_size=B, quantile_source=source, credit=credit, objective=objective))
    for _ in range(2):
        adv = est.advantages(torch.randn(P, n, generator=g, dtype=torch.float64))
        assert (adv <= 0).all()


def test_no_baseline_splits_into_nonnegative_rvar_and_nonpositive_cvar():
    scores = [-2.0, -1, 0, 1, 2, 3, 4, 5, 6, 7]
    rvar = one_bundle_advantages(scores, baseline="none", objective="rvar", quantile_source="bundle")
    assert (rvar >= 0).all() and (rvar > 0).any()
    cvar_only = one_bundle_advantages(scores, baseline="none", w_mix=1e9, quantile_source="bundle")
    assert (cvar_only <= 1e-6).all() and (cvar_only < 0).any()


def test_seeking_rewards_the_upper_tail():
    adv = one_bundle_advantages([0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9], objective="seeking", quantile_source="bundle")
    assert adv[-1] > 0 and adv[0] < 0


EDGE_CASES = {
    "ties": torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]]),
    "all_zero": torch.zeros(10, 4),
    "all_one": torch.ones(10, 4),
    "n_1": torch.tensor([[1.0], [0.0], [1.0], [1.0], [0.0], [1.0]]),
    "b_1": torch.tensor([[0.0, 1, 1]]),
    "p_less_than_b": torch.tensor([[0.0, 1], [1, 1]]),
    "huge": torch.tensor([[1e6, -1e6, 3.0], [0, 1e-9, 2e-9]]),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("preset", RiskPOConfig.preset_names())
def test_every_output_finite_and_same_dtype(case, dtype, device, preset):
    rewards = EDGE_CASES[case].to(device=device, dtype=dtype)
    est = RiskPOEstimator(RiskPOConfig.preset(preset))
    for _ in range(2):
        adv = est.advantages(rewards)
        assert adv.dtype == dtype and adv.device == rewards.device and adv.shape == rewards.shape
        assert torch.isfinite(adv).all()
        assert all(np.isfinite(v) for v in est.metrics.values())


@pytest.mark.parametrize("device", DEVICES)
def test_unequal_counts_leave_surplus_unpaired_with_zero_advantage(device):
    rewards = torch.tensor([[1.0, 0, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0]], device=device)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True], [True, False, True, False]], device=device)
    est = RiskPOEstimator(RiskPOConfig(bundle_size=3, pairing="positional", quantile_source="bundle"))
    adv = est.advantages(rewards, mask=mask)
    assert est.metrics["unpaired_responses"] == 1 + 2  # counts 3, 4, 2 -> 2 papers
    assert est.metrics["papers"] == 2
    assert (adv[~mask] == 0).all()
    assert adv[0, 2] == 0 and adv[1, 2] == 0 and adv[1, 3] == 0  # positional: third/fourth response unpaired


def test_question_without_valid_responses_zeroes_its_bundle():
    mask = torch.ones(4, 3, dtype=torch.bool)
    mask[1] = False
    est = RiskPOEstimator(RiskPOConfig(bundle_size=2))
    adv = est.advantages(torch.ones(4, 3), mask=mask)
    assert (adv[:2] == 0).all() and torch.isfinite(adv).all()
    assert est.metrics["unpaired_responses"] == 3


def test_partial_bundle_uses_own_quantiles_and_skips_tracker():
    rewards = torch.tensor([[1.0, 0, 1, 0]] * 5 + [[3.0, 3, 3, 3], [5.0, 5, 5, 5]])  # 7 prompts, B = 5
    est = RiskPOEstimator(RiskPOConfig(pairing="positional", track_grid=()))
    est.tracker().set([100.0, 200.0])  # far away: any use of it by the partial bundle would show
    adv = est.advantages(rewards)
    assert est.metrics["partial_bundles"] == 1
    assert torch.equal(adv[5:], torch.zeros(2, 4))  # own quantiles of equal scores (8, 8, 8, 8): zero
    assert (adv[:5] < 0).all()  # full bundle scored against the tracker
    scores = torch.tensor([5.0, 0, 5, 0])  # full bundle only: [5, 0, 5, 0]
    expected = torch.tensor([100.0, 200.0]) + 0.1 * (torch.tensor([0.2, 0.8]) - (scores[None] < torch.tensor([[100.0], [200.0]])).double().mean(1))
    torch.testing.assert_close(est.tracker().estimates, expected.double())


def test_bundle_by_task_never_mixes_tasks_and_keeps_one_tracker_per_task():
    rewards = torch.tensor([[0.0, 1], [10, 20], [1, 1], [30, 10], [0, 0], [20, 20]])
    groups = ["math", "code", "math", "code", "math", "code"]
    est = RiskPOEstimator(RiskPOConfig(bundle_size=3, bundle_by="task"))
    est.advantages(rewards, groups=groups)
    b = est.last_bundles
    assert b.bundle[0] == b.bundle[2] == b.bundle[4] and b.bundle[1] == b.bundle[3] == b.bundle[5]
    assert b.bundle[0] != b.bundle[1]
    assert set(est.trackers) == {"math", "code"}
    assert est.trackers["code"].estimates[0] > est.trackers["math"].estimates[1]
    assert "tracked/math/q_alpha" in est.metrics


def test_first_step_initialises_tracker_from_empirical_quantiles():
    rewards = (torch.rand(40, 8, generator=torch.Generator().manual_seed(1)) < 0.4).double()
    est = RiskPOEstimator(RiskPOConfig(pairing="positional", track_grid=(0.5,)))
    est.advantages(rewards)
    scores = rewards.reshape(8, 5, 8).sum(1).flatten().numpy()  # bundles of 5, paper j = column j
    q0 = np.quantile(scores, [0.2, 0.8, 0.5])
    assert est.metrics["tracked/q_alpha"] == pytest.approx(q0[0]) and est.metrics["tracked/q_beta"] == pytest.approx(q0[1])
    below = (scores[None, :] < q0[:, None]).mean(1)
    np.testing.assert_allclose(est.tracker().estimates.numpy(), q0 + 0.1 * (np.array([0.2, 0.8, 0.5]) - below))
    assert est.tracker().count == 1
    assert est.metrics["batch/q_alpha"] == pytest.approx(q0[0])


def test_tracker_converges_to_true_quantiles_on_a_stationary_stream():
    """Normal(0, 1) scores, 64 per step, lr 0.5 / (1 + k)^0.6, 3000 steps: within 0.05 of the true quantiles."""
    g = torch.Generator().manual_seed(0)
    levels = [0.2, 0.5, 0.8]
    tracker = QuantileTracker(levels, lr=0.5, decay=0.6)
    tracker.set([3.0, 3.0, 3.0])  # start far off
    for _ in range(3000):
        tracker.update(torch.randn(64, generator=g, dtype=torch.float64))
    true = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(levels, dtype=torch.float64))
    assert (tracker.estimates - true).abs().max() < 0.05


def test_tracker_lr_schedule():
    tracker = QuantileTracker([0.5], lr=0.1, decay=1.0)
    assert tracker.lr_at(0) == pytest.approx(0.1) and tracker.lr_at(3) == pytest.approx(0.025)


@pytest.mark.parametrize("source", ["tracked", "mix"])
def test_state_dict_round_trip_reproduces_next_advantages_bit_for_bit(source):
    g = torch.Generator().manual_seed(2)
    cfg = RiskPOConfig(quantile_source=source, bundle_by="task", lr_q_decay=0.5)
    groups = ["a", "b"] * 10
    est = RiskPOEstimator(cfg, seed=7)
    for _ in range(3):
        est.advantages((torch.rand(20, 8, generator=g) < 0.5).float(), groups=groups)
    buf = io.BytesIO()
    torch.save(est.state_dict(), buf)
    buf.seek(0)
    resumed = RiskPOEstimator(cfg, seed=12345)
    resumed.load_state_dict(torch.load(buf, weights_only=False))
    for _ in range(2):
        rewards = (torch.rand(20, 8, generator=g) < 0.5).float()
        a, b = est.advantages(rewards, groups=groups), resumed.advantages(rewards, groups=groups)
        assert torch.equal(a, b)
        assert torch.equal(est.last_order, resumed.last_order)


def test_random_pairing_is_seeded_and_uniform_over_valid_responses():
    rewards = torch.zeros(5, 4)
    a = RiskPOEstimator(RiskPOConfig(), seed=3)
    b = RiskPOEstimator(RiskPOConfig(), seed=3)
    a.advantages(rewards)
    b.advantages(rewards)
    assert torch.equal(a.last_order, b.last_order)
    counts = torch.zeros(4, 4)
    for _ in range(400):
        a.advantages(rewards[:1])
        counts[torch.arange(4), a.last_order[0]] += 1
    assert (counts - 100).abs().max() < 40  # every response lands in every paper slot ~1/4 of the time


def test_metrics_report_risk_measures_of_bundle_scores():
    est = RiskPOEstimator(RiskPOConfig(bundle_size=1, pairing="positional", quantile_source="bundle"))
    est.advantages(torch.tensor([[0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]))
    m = est.metrics
    assert m["bundle_score/cvar"] == pytest.approx(0.5)  # mean of the lowest 20%
    assert m["bundle_score/rvar"] == pytest.approx(4.5)  # mean of the 20%..80% band
    assert m["bundle_score/mvar"] == pytest.approx((1.5 * 0.5 + 4.5) / 2.5)
    assert m["zero_adv_frac"] == pytest.approx(0.2)  # papers at or above b = 7.2
    assert m["partial_bundles"] == 0 and m["unpaired_responses"] == 0


def test_bad_inputs_raise_clear_errors():
    est = RiskPOEstimator()
    with pytest.raises(ValueError, match="rewards must be a float tensor"):
        est.advantages(torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        est.advantages(torch.ones(3, 4), mask=torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN or inf"):
        est.advantages(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="one task label per prompt"):
        RiskPOEstimator(RiskPOConfig(bundle_by="task")).advantages(torch.ones(3, 2), groups=["a"])


def test_logging_grid_never_changes_tracked_quantiles_or_advantages():
    g = torch.Generator().manual_seed(7)
    plain = RiskPOEstimator(RiskPOConfig(track_grid=()), seed=0)
    logged = RiskPOEstimator(RiskPOConfig(), seed=0)  # the default 0.05..0.95 logging grid
    for _ in range(12):
        rewards = torch.randint(0, 2, (10, 8), generator=g).double()
        torch.testing.assert_close(plain.advantages(rewards), logged.advantages(rewards), rtol=0, atol=0)
        a, b = plain.tracker().estimates, logged.tracker().estimates[:2]
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert a[0] <= a[1]


@settings(max_examples=40, deadline=None)
@given(P=st.integers(1, 12), n=st.integers(2, 6), B=st.integers(1, 4), seed=st.integers(0, 2**16),
       preset=st.sampled_from(["riskpo", "riskpo_authors_hard_math"]))
def test_prompt_centering_leaves_each_prompt_zero_mean_and_keeps_the_differences(P, n, B, seed, preset):
    g = torch.Generator().manual_seed(seed)
    rewards = (torch.rand(P, n, generator=g, dtype=torch.float64) < 0.5).double()
    plain = RiskPOEstimator(RiskPOConfig.preset(preset, bundle_size=B), seed=seed).advantages(rewards)
    centred = RiskPOEstimator(RiskPOConfig.preset(preset, bundle_size=B, center="prompt"), seed=seed).advantages(rewards)
    torch.testing.assert_close(centred.sum(1), torch.zeros(P, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(centred, plain - plain.mean(1, keepdim=True), atol=1e-12, rtol=0)
