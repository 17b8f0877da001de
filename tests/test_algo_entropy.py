"""The paper's entropy argument where it is exact.

For a softmax policy a natural-gradient step theta += lr * A changes the entropy by
-lr * Cov_{a~pi}(log pi(a), A(a)) to first order. RiskPO's MVaR advantage is flat above the
upper quantile, so when log-prob rises with reward in both tails (the paper's assumption) it
has a lower covariance with log-probs than GRPO's advantage; when log-prob falls with reward
(confident wrong answers) the ordering flips.
"""

from __future__ import annotations

import pytest
import torch

from riskpo_mm.algo import RiskPOConfig, build_estimator


def entropy(theta: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(theta, -1)
    return -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("seed", range(5))
def test_natural_gradient_step_changes_entropy_by_minus_lr_cov(seed):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(7, generator=g, dtype=torch.float64) * 2
    adv = torch.randn(7, generator=g, dtype=torch.float64)
    pi = torch.softmax(theta, -1)
    logpi = pi.log()
    cov = (pi * logpi * adv).sum() - (pi * logpi).sum() * (pi * adv).sum()
    lr = 1e-3
    delta = entropy(theta + lr * adv) - entropy(theta)
    assert delta.item() == pytest.approx(-lr * cov.item(), rel=2e-2, abs=1e-9)


def batch_cov(logp: torch.Tensor, adv: torch.Tensor) -> float:
    """Covariance over the batch's responses of log-prob and advantage, per unit advantage std."""
    x, a = logp.flatten(), adv.flatten()
    return (((x - x.mean()) * (a - a.mean())).mean() / a.std()).item()


def sampled_batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    solve_rate = torch.rand(200, 1, generator=g, dtype=torch.float64)  # easy and hard questions
    rewards = (torch.rand(200, 8, generator=g, dtype=torch.float64) < solve_rate).double()
    return rewards, 0.3 * torch.randn(200, 8, generator=g, dtype=torch.float64)


def covariances(logp: torch.Tensor, rewards: torch.Tensor) -> tuple[float, float]:
    grpo = build_estimator("grpo").advantages(rewards)
    mvar = build_estimator("riskpo", RiskPOConfig(quantile_source="bundle", pairing="positional")).advantages(rewards)
    return batch_cov(logp, grpo), batch_cov(logp, mvar)


def test_mvar_has_lower_logprob_covariance_than_grpo_when_logprob_rises_with_reward():
    rewards, noise = sampled_batch()
    cov_grpo, cov_mvar = covariances(-2.0 + 1.5 * rewards + noise, rewards)
    assert 0 < cov_mvar < cov_grpo


def test_ordering_flips_when_logprob_falls_with_reward():
    rewards, noise = sampled_batch()
    cov_grpo, cov_mvar = covariances(-1.0 - 2.0 * rewards + noise, rewards)  # confident wrong answers
    assert cov_grpo < cov_mvar < 0
