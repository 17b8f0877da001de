"""The RiskPO policy loss inside OpenRLHF's actor (spec section 7).

`RiskPOPolicyLoss` subclasses OpenRLHF's `PolicyLoss` with the same call signature and return
contract ``(loss, clip_ratio, ppo_kl, vllm_kl, is_filter_ratio)``, so ``ActorPPOTrainer.training_step``
uses it unchanged. The surrogate is `riskpo_mm.algo.policy_loss` (token or sequence ratio,
clip-higher, dual clip, token-mean or seq-mean). OpenRLHF's global normalisers (``batch_num_tokens``
/ ``global_batch_size`` over the optimizer step and data-parallel ranks) are applied by rescaling
the local mean, so gradient accumulation and data parallelism weigh tokens exactly as OpenRLHF does.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Optional

import torch

from riskpo_mm.openrlhf_ext import compat

compat.install()

from openrlhf.models import PolicyLoss  # noqa: E402
from openrlhf.models.utils import masked_mean  # noqa: E402

from riskpo_mm.algo import policy_loss  # noqa: E402

RATIOS = ("token", "sequence")


class RiskPOPolicyLoss(PolicyLoss):
    """OpenRLHF ``PolicyLoss`` whose surrogate is ``riskpo_mm.algo.policy_loss``.

    ratio: "token" (per-token ratio, default) or "sequence" (geometric-mean ratio per response).
    clip_eps_low / clip_eps_high: clip-higher bounds; dual_clip: c > 1 or None;
    token_level_loss: True = token-mean, False = seq-mean (mean over responses of their token mean).
    OpenRLHF's train/rollout importance-sampling correction is not part of this loss.
    """

    def __init__(
        self,
        ratio: str = "token",
        clip_eps_low: float = 0.2,
        clip_eps_high: float = 0.2,
        dual_clip: Optional[float] = None,
        token_level_loss: bool = True,
    ) -> None:
        if ratio not in RATIOS:
            raise ValueError(f"RiskPOPolicyLoss: ratio must be one of {RATIOS}, got {ratio!r}")
        super().__init__(
            clip_eps_low=clip_eps_low,
            clip_eps_high=clip_eps_high,
            dual_clip=dual_clip,
            token_level_loss=token_level_loss,
            policy_loss_type="ppo" if ratio == "token" else "gspo",
        )
        self.ratio = ratio
        self.token_level_loss = token_level_loss  # the parent forces seq-mean for gspo; ours is explicit
        self.last_metrics: dict[str, torch.Tensor] = {}

    @classmethod
    def from_args(cls, args: SimpleNamespace) -> "RiskPOPolicyLoss":
        """Build from OpenRLHF's hierarchized args plus ``args.riskpo`` (see ``flags``)."""
        if args.algo.advantage.is_correction_level != "off":
            raise ValueError(
                "--algo.advantage.is_correction_level: the RiskPO loss (--riskpo.loss riskpo) has no train/rollout "
                "importance-sampling correction; use --riskpo.loss openrlhf or --algo.advantage.is_correction_level off"
            )
        low, high = args.actor.eps_clip_low_high
        return cls(
            ratio=args.riskpo.ratio,
            clip_eps_low=low,
            clip_eps_high=high,
            dual_clip=args.actor.dual_clip,
            token_level_loss=args.actor.loss_agg_mode == "token-mean",
        )

    def forward(
        self,
        log_probs: torch.Tensor,
        old_log_probs: torch.Tensor,
        advantages: torch.Tensor,
        action_mask: Optional[torch.Tensor] = None,
        rollout_log_probs: Optional[torch.Tensor] = None,
        dp_size: int = 1,
        batch_num_tokens: Optional[Any] = None,
        global_batch_size: Optional[Any] = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None, None]:
        """log_probs, old_log_probs, advantages, action_mask: [B, T] -> (loss, clip_ratio, ppo_kl, None, None)."""
        if action_mask is None:
            action_mask = torch.ones_like(log_probs, dtype=torch.bool)
        mask = action_mask.bool()
        agg = "token_mean" if self.token_level_loss else "seq_mean"
        loss, metrics = policy_loss(
            log_probs,
            old_log_probs,
            advantages,
            mask,
            ratio=self.ratio,
            clip_low=self.clip_eps_low,
            clip_high=self.clip_eps_high,
            dual_clip=self.dual_clip,
            agg=agg,
        )
        # Local mean -> OpenRLHF's global normalisation: sum / global count * dp_size.
        if self.token_level_loss and batch_num_tokens is not None:
            loss = loss * (mask.sum().to(loss.dtype) / batch_num_tokens * dp_size)
        elif not self.token_level_loss and global_batch_size is not None:
            loss = loss * (mask.any(dim=-1).sum().to(loss.dtype) / global_batch_size * dp_size)
        self.last_metrics = {k: v.detach() for k, v in metrics.items()}
        ppo_kl = masked_mean(-(log_probs - old_log_probs).detach(), mask, dim=None)
        return loss, metrics["clip_frac"].detach(), ppo_kl, None, None
