"""The RiskPO loss inside OpenRLHF's actor: same contract as OpenRLHF's PolicyLoss, riskpo_mm's math."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from riskpo_mm.algo import policy_loss
from riskpo_mm.openrlhf_ext.loss import RiskPOPolicyLoss
from openrlhf.models import PolicyLoss


def _batch(seed: int = 0, per_sequence_adv: bool = False):
    g = torch.Generator().manual_seed(seed)
    B, T = 4, 6
    old = -torch.rand(B, T, generator=g) * 3
    new = (old + 0.4 * torch.randn(B, T, generator=g)).requires_grad_(True)
    adv = torch.randn(B, 1 if per_sequence_adv else T, generator=g).expand(B, T).contiguous()
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 4:] = False
    mask[2, 1:] = False
    return new, old, adv, mask


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dual_clip", [None, 3.0])
@pytest.mark.parametrize("token_level", [True, False])
def test_token_ratio_loss_equals_openrlhf_policy_loss_with_the_same_clip(dual_clip, token_level):
    new, old, adv, mask = _batch()
    ours = RiskPOPolicyLoss("token", 0.2, 0.28, dual_clip, token_level)
    theirs = PolicyLoss(0.2, 0.28, dual_clip, token_level, "ppo")
    l1, clip1, kl1, vllm_kl, is_ratio = ours(new, old, adv, action_mask=mask)
    l2, clip2, kl2, _, _ = theirs(new, old, adv, action_mask=mask)
    _same(l1, l2)
    _same(kl1, kl2)
    if dual_clip is None:
        _same(clip1, clip2)
    assert vllm_kl is None and is_ratio is None
    g1 = torch.autograd.grad(l1, new)[0]
    g2 = torch.autograd.grad(theirs(new, old, adv, action_mask=mask)[0], new)[0]
    _same(g1, g2)


@pytest.mark.parametrize("token_level", [True, False])
def test_global_normalisers_scale_like_openrlhf(token_level):
    """Under grad accumulation / data parallelism OpenRLHF divides by the global count times dp_size."""
    new, old, adv, mask = _batch(1)
    info = dict(dp_size=2, batch_num_tokens=torch.tensor(40.0), global_batch_size=torch.tensor(7.0))
    ours = RiskPOPolicyLoss("token", 0.2, 0.2, None, token_level)(new, old, adv, action_mask=mask, **info)[0]
    theirs = PolicyLoss(0.2, 0.2, None, token_level, "ppo")(new, old, adv, action_mask=mask, **info)[0]
    _same(ours, theirs)


def test_sequence_ratio_equals_openrlhf_gspo_when_advantages_are_per_sequence():
    new, old, adv, mask = _batch(2, per_sequence_adv=True)
    ours = RiskPOPolicyLoss("sequence", 0.003, 0.004, None, token_level_loss=False)
    theirs = PolicyLoss(0.003, 0.004, None, False, "gspo")
    _same(ours(new, old, adv, action_mask=mask)[0], theirs(new, old, adv, action_mask=mask)[0])


@pytest.mark.parametrize("ratio", ["token", "sequence"])
@pytest.mark.parametrize("agg", ["token_mean", "seq_mean"])
def test_loss_is_algo_policy_loss(ratio, agg):
    new, old, adv, mask = _batch(3)
    ours = RiskPOPolicyLoss(ratio, 0.2, 0.28, 3.0, token_level_loss=agg == "token_mean")
    loss, clip_ratio, *_ = ours(new, old, adv, action_mask=mask)
    ref, metrics = policy_loss(new, old, adv, mask, ratio=ratio, clip_low=0.2, clip_high=0.28, dual_clip=3.0, agg=agg)
    _same(loss, ref)
    _same(clip_ratio, metrics["clip_frac"])
    assert set(ours.last_metrics) == set(metrics)


def _args(**actor):
    return SimpleNamespace(
        actor=SimpleNamespace(
            **{"eps_clip_low_high": (0.2, 0.28), "dual_clip": None, "loss_agg_mode": "token-mean", **actor}
        ),
        algo=SimpleNamespace(advantage=SimpleNamespace(is_correction_level="off")),
        riskpo=SimpleNamespace(ratio="sequence"),
    )


def test_from_args_reads_openrlhf_clip_dual_clip_and_aggregation_flags():
    loss = RiskPOPolicyLoss.from_args(_args(dual_clip=3.0, loss_agg_mode="seq-mean-token-mean"))
    assert (loss.ratio, loss.clip_eps_low, loss.clip_eps_high, loss.dual_clip) == ("sequence", 0.2, 0.28, 3.0)
    assert loss.token_level_loss is False


def test_from_args_rejects_openrlhf_is_correction_with_a_clear_message():
    args = _args()
    args.algo.advantage.is_correction_level = "token"
    with pytest.raises(ValueError, match="is_correction_level"):
        RiskPOPolicyLoss.from_args(args)


def test_bad_ratio_is_rejected():
    with pytest.raises(ValueError, match="ratio"):
        RiskPOPolicyLoss("bundle")
