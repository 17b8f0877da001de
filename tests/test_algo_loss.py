"""Policy loss, true token entropy and KL estimates against hand-written loop references."""

from __future__ import annotations

import math

import pytest
import torch

from riskpo_mm.algo import kl_penalty, masked_entropy, policy_loss


def loop_policy_loss(logp, old, adv, mask, ratio, clip_low, clip_high, dual_clip, agg) -> float:
    """One sequence and one token at a time, Python floats."""
    seq_losses, all_tokens = [], []
    for i in range(len(logp)):
        toks = [t for t in range(len(logp[i])) if mask[i][t]]
        if not toks:
            continue
        if ratio == "sequence":
            s = math.exp(sum(logp[i][t] - old[i][t] for t in toks) / len(toks))
            a_seq = sum(adv[i][t] for t in toks) / len(toks)
        losses = []
        for t in toks:
            r, a = (s, a_seq) if ratio == "sequence" else (math.exp(logp[i][t] - old[i][t]), adv[i][t])
            loss = max(-a * r, -a * min(max(r, 1 - clip_low), 1 + clip_high))
            if dual_clip is not None and a < 0:
                loss = min(loss, -a * dual_clip)
            losses.append(loss)
        all_tokens.extend(losses)
        seq_losses.append(sum(losses) / len(losses))
    if not all_tokens:
        return 0.0
    return sum(all_tokens) / len(all_tokens) if agg == "token_mean" else sum(seq_losses) / len(seq_losses)


@pytest.mark.parametrize("ratio", ["token", "sequence"])
@pytest.mark.parametrize("agg", ["token_mean", "seq_mean"])
@pytest.mark.parametrize("dual_clip", [None, 3.0])
@pytest.mark.parametrize("clip", [(0.2, 0.2), (0.2, 0.28)])
def test_policy_loss_matches_loop_reference(ratio, agg, dual_clip, clip):
    g = torch.Generator().manual_seed(0)
    shape = (16, 7)
    old = -torch.rand(shape, generator=g, dtype=torch.float64) * 3
    drift = torch.randn(shape[0], 1, generator=g, dtype=torch.float64) * 0.4  # moves whole sequences
    logp = old + drift + torch.randn(shape, generator=g, dtype=torch.float64) * 0.6
    adv = torch.randn(shape[0], 1, generator=g, dtype=torch.float64).expand(shape).clone() * 2
    mask = torch.rand(shape, generator=g) < 0.7
    mask[0] = False  # an empty sequence
    loss, metrics = policy_loss(logp, old, adv, mask, ratio=ratio, clip_low=clip[0], clip_high=clip[1], dual_clip=dual_clip, agg=agg)
    expected = loop_policy_loss(logp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), ratio, *clip, dual_clip, agg)
    assert loss.item() == pytest.approx(expected, abs=1e-10)
    assert 0 < metrics["clip_frac"] < 1 and metrics["approx_kl"] > 0
    assert metrics["ratio_max"] >= metrics["ratio_mean"]


def test_sequence_ratio_gradient_reaches_every_token_of_the_sequence():
    logp = torch.zeros(2, 4, requires_grad=True)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    loss, _ = policy_loss(logp, torch.zeros(2, 4), torch.ones(2, 4), mask, ratio="sequence", agg="seq_mean")
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[-1 / 6] * 3 + [0.0], [-1 / 4] * 2 + [0.0] * 2]))


def test_no_tokens_gives_zero_loss_with_gradient_path():
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, metrics = policy_loss(logp, torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and all(torch.isfinite(v) for v in metrics.values())


def test_bad_loss_options_raise():
    x = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="ratio"):
        policy_loss(x, x, x, x.bool(), ratio="tok")
    with pytest.raises(ValueError, match="dual_clip"):
        policy_loss(x, x, x, x.bool(), dual_clip=0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_masked_entropy_is_true_vocabulary_entropy_in_chunks(dtype):
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(3, 5, 11, generator=g) * 3).to(dtype)
    mask = torch.rand(3, 5, generator=g) < 0.6
    mean, per_token = masked_entropy(logits, mask, chunk_size=4)
    for b in range(3):
        for t in range(5):
            p = torch.softmax(logits[b, t].float(), -1)
            h = -(p * p.log()).sum() if mask[b, t] else torch.tensor(0.0)
            assert per_token[b, t].item() == pytest.approx(h.item(), abs=1e-4)
    assert mean.item() == pytest.approx(per_token[mask].mean().item(), abs=1e-5)
    uniform, _ = masked_entropy(torch.zeros(1, 2, 11), torch.ones(1, 2, dtype=torch.bool))
    assert uniform.item() == pytest.approx(math.log(11), abs=1e-6)


def test_kl_estimates():
    logp, ref = torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.5, -1.0]])
    d = logp - ref
    assert torch.allclose(kl_penalty(logp, ref, "k1"), d)
    assert torch.allclose(kl_penalty(logp, ref, "k2"), 0.5 * d**2)
    assert torch.allclose(kl_penalty(logp, ref, "k3"), torch.exp(-d) + d - 1)
    assert (kl_penalty(logp, ref, "k3") >= 0).all()
    with pytest.raises(ValueError, match="kind"):
        kl_penalty(logp, ref, "k4")
