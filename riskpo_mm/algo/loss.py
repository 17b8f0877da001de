"""Policy-loss math shared by both engines (spec section 7): clipped surrogate, entropy, KL.

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


def policy_loss(
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    ratio: str = "token",
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: Optional[float] = None,
    agg: str = "token_mean",
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate. log_probs, old_log_probs, advantages, mask: [B, T] -> (scalar loss, metrics).

    ratio="token": r_t = exp(logp_t - old_t) per token (authors' recipes).
    ratio="sequence": s = exp(mean_t(logp_t - old_t)) over the response tokens, one per sequence
    (= (pi/pi_old)^(1/|y|), the paper's), with the sequence's advantage (mean of its token advantages).
    Clip to [1 - clip_low, 1 + clip_high]; dual_clip c > 1 caps the loss of negative advantages at -c*A.
    agg="token_mean": mean over all response tokens; "seq_mean": mean over sequences of their token mean
    (sequences without tokens are left out). Metrics: clip_frac, ratio_mean, ratio_max, approx_kl (k3).
    """
    if ratio not in ("token", "sequence"):
        raise ValueError(f"policy_loss: ratio must be 'token' or 'sequence', got {ratio!r}")
    if agg not in ("token_mean", "seq_mean"):
        raise ValueError(f"policy_loss: agg must be 'token_mean' or 'seq_mean', got {agg!r}")
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"policy_loss: dual_clip must be > 1, got {dual_clip}")
    mask = mask.to(torch.bool)
    log_ratio = torch.where(mask, log_probs - old_log_probs, torch.zeros_like(log_probs))  # [B, T]
    if ratio == "token":
        r = torch.exp(log_ratio)  # [B, T]
        adv = advantages
    else:
        r = torch.exp(masked_mean(log_ratio, mask, dim=1))[:, None].expand_as(log_ratio)  # [B, T] shared
        adv = masked_mean(advantages, mask, dim=1)[:, None].expand_as(log_ratio)
    loss_unclipped = -adv * r
    loss_clipped = -adv * torch.clamp(r, 1.0 - clip_low, 1.0 + clip_high)
    loss_tok = torch.maximum(loss_unclipped, loss_clipped)
    clipped = loss_clipped > loss_unclipped
    if dual_clip is not None:
        capped = torch.minimum(loss_tok, -adv * dual_clip)
        clipped = clipped | ((adv < 0) & (capped < loss_tok))
        loss_tok = torch.where(adv < 0, capped, loss_tok)
    if agg == "token_mean":
        loss = masked_mean(loss_tok, mask)
    else:
        has = mask.any(1)
        loss = masked_mean(masked_mean(loss_tok, mask, dim=1), has)
    with torch.no_grad():
        lr = log_ratio.detach()
        metrics = {
            "clip_frac": masked_mean(clipped.to(lr.dtype), mask),
            "ratio_mean": masked_mean(r.detach(), mask),
            "ratio_max": torch.where(mask, r.detach(), torch.full_like(lr, -float("inf"))).max()
            if bool(mask.any())
            else lr.new_zeros(()),
            "approx_kl": masked_mean(torch.expm1(-lr) + lr, mask),  # k3 estimate of KL(old || new)
        }
    return loss, metrics


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
