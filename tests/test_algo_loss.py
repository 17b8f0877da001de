"""True token entropy and KL estimates against hand-written loop references."""

from __future__ import annotations

import math

import pytest
import torch

from riskpo_mm.algo import kl_penalty, masked_entropy


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
