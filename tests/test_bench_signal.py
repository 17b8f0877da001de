"""The advantage-signal benchmark: how much of each estimator's advantage follows a response's own outcome."""

import argparse

import pytest
import torch

from riskpo_mm.algo import RiskPOConfig
from riskpo_mm.bench import signal


@pytest.fixture(scope="module")
def args():
    return argparse.Namespace(prompts=20, n=8, steps=60, warmup=10, seeds=1)


def cos_of(cfg, args, kind="riskpo"):
    return signal.measure(kind, cfg, args, seed=0)[0]


def test_grpo_advantages_are_almost_the_centred_correctness(args):
    assert cos_of(None, args, "grpo") > 0.85


def test_bundling_dilutes_each_responses_own_outcome_in_its_advantage(args):
    b1 = cos_of(RiskPOConfig(bundle_size=1, baseline="none"), args)
    b5 = cos_of(RiskPOConfig(bundle_size=5, baseline="none"), args)
    assert cos_of(None, args, "grpo") > b1 > b5 + 0.2


def test_hard_math_credit_recovers_much_of_the_own_outcome_signal(args):
    uniform = cos_of(RiskPOConfig(bundle_size=5, baseline="none", quantile_source="bundle", pairing="positional"), args)
    assert cos_of(RiskPOConfig.preset("riskpo_authors_hard_math"), args) > uniform + 0.15


def test_bundle_quantiles_leave_less_per_question_mean_than_tracked_ones(args):
    tracked = signal.measure("riskpo", RiskPOConfig(baseline="none"), args, seed=0)[1]
    bundle = signal.measure("riskpo", RiskPOConfig(baseline="none", quantile_source="bundle"), args, seed=0)[1]
    assert bundle < 0.5 * tracked


def test_seeded_beta_draws_have_the_beta_4_1p5_moments():
    x = signal.beta_4_1p5(100_000, torch.Generator().manual_seed(0))
    assert abs(x.mean().item() - 4 / 5.5) < 0.003
    assert abs(x.var().item() - 6 / (5.5**2 * 6.5)) < 0.001


def test_main_prints_every_method(capsys):
    assert signal.main(["--steps", "5", "--warmup", "2", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in signal.METHODS)
