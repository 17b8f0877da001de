"""Token entropy and KL estimates (the clipped surrogate is OpenRLHF's ``PolicyLoss`` on both engines).

Shapes: B sequences, T response tokens, V vocabulary; `mask: [B, T]` marks response tokens.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def masked_mean(x: Tensor, mask: Tensor, dim: Optional[int] = None) -> Tensor:
    """Mean of x over mask (over `dim`, or everything); 0 where nothing is masked in."""
    m = mask.to(x.dtype)
    if dim is None:
        return (x * m).sum() / m.sum().clamp(min=1.0)
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1.0)


def masked_entropy(logits: Tensor, mask: Tensor, chunk_size: int = 1024) -> tuple[Tensor, Tensor]:
    """True token entropy over the vocabulary. logits: [B, T, V], mask: [B, T] -> (masked mean, per-token [B, T]).

    Computed in float32 (or the logits' wider dtype) over chunks of `chunk_size` tokens of the
    flattened B*T so the softmax never materialises for all tokens at once. Differentiable;
    wrap in torch.no_grad() when only logging.
    """
    b, t, v = logits.shape
    flat = logits.reshape(b * t, v)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    parts = []
    for start in range(0, b * t, chunk_size):
        x = flat[start : start + chunk_size].to(dtype)
        logp = torch.log_softmax(x, dim=-1)
        parts.append(-(logp.exp() * logp).sum(-1))
    ent = (torch.cat(parts) if parts else flat.new_zeros(0, dtype=dtype)).reshape(b, t)
    ent = torch.where(mask.to(torch.bool), ent, torch.zeros_like(ent))
    return masked_mean(ent, mask), ent


def kl_penalty(log_probs: Tensor, ref_log_probs: Tensor, kind: str = "k3") -> Tensor:
    """Per-token KL(pi || ref) estimate from samples of pi: k1 = logp - ref, k2 = (logp - ref)^2 / 2,
    k3 = exp(ref - logp) - (ref - logp) - 1 (unbiased, >= 0). [B, T] -> [B, T]."""
    diff = log_probs - ref_log_probs
    if kind == "k1":
        return diff
    if kind == "k2":
        return 0.5 * diff**2
    if kind == "k3":
        return torch.expm1(-diff) + diff
    raise ValueError(f"kl_penalty: kind must be 'k1', 'k2' or 'k3', got {kind!r}")
