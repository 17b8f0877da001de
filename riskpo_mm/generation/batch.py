"""The sampled responses of a batch of prompts, as both generation backends return them.

`RolloutBatch` keeps every sample unpadded (prompt ids, response ids up to and
including EOS, its images) so it converts exactly into OpenRLHF's `Experience`
layout: prompt + response right-padded, `action_mask[t]` marking that token
t + 1 was generated. `generation.hf.generate_rollouts` (HF generate) and
`generation.vllm.VLLMRollout.generate` (vLLM) both fill it; the model-family and
processor helpers here are what every prompt encoder (rollouts, evaluation, SFT)
shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from riskpo_mm.config import RewardConfig
from riskpo_mm.data import PromptBatch, Record
from riskpo_mm.generation.settings import code_limits, reward_weights

FAMILY_BY_MODEL_TYPE = {
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_5_vl",
    "qwen3_vl": "qwen3_vl",
    "qwen3_5": "qwen3_5",
    "qwen3_5_moe": "qwen3_5",
    "qwen2": "qwen2",
    "qwen3": "qwen2",
}


def model_family(config, configured: Optional[str] = None) -> str:
    """The Qwen family of a model config (its `model_type`), unless the config names one."""
    if configured:
        return configured
    model_type = getattr(config, "model_type", "")
    if model_type not in FAMILY_BY_MODEL_TYPE:
        raise ValueError(f"model_type {model_type!r} is not a supported family; set model.family to one of "
                         f"{sorted(set(FAMILY_BY_MODEL_TYPE.values()))}")
    return FAMILY_BY_MODEL_TYPE[model_type]


def tokenizer_of(processor):
    """The tokenizer inside a VLM processor, or the processor itself for text models."""
    return getattr(processor, "tokenizer", processor)


def prompt_vision_inputs(pb: PromptBatch) -> list[Optional[dict[str, torch.Tensor]]]:
    """One `{pixel_values, image_grid_thw}` dict per prompt of `pb` (None for text-only prompts)."""
    out: list[Optional[dict[str, torch.Tensor]]] = []
    for i in range(len(pb)):
        pixels, grid = pb.vision_inputs([i])
        out.append(None if grid is None else {"pixel_values": pixels, "image_grid_thw": grid})
    return out


def model_inputs(pb: PromptBatch, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The tensors `generate` takes (it derives `mm_token_type_ids` for the repeated rows itself)."""
    inputs = {"input_ids": pb.input_ids.to(device), "attention_mask": pb.attention_mask.to(device)}
    if pb.pixel_values is not None:
        inputs.update(pixel_values=pb.pixel_values.to(device, dtype), image_grid_thw=pb.image_grid_thw.to(device))
    return inputs


@dataclass
class RolloutBatch:
    """P prompts x n samples; sample index p * n + j."""

    records: list[Record]
    n: int
    prompt_ids: list[torch.Tensor]  # P*n x [L_i]
    response_ids: list[torch.Tensor]  # P*n x [T_i] (up to and including EOS)
    rollout_logprobs: list[torch.Tensor]  # P*n x [T_i]
    mm: list[Optional[dict[str, torch.Tensor]]]  # P*n, None for text-only prompts
    responses: list[str]  # P*n decoded
    truncated: list[bool]  # P*n: no EOS within max_new_tokens
    rewards: Optional[torch.Tensor] = None  # [P, n]
    results: list[Any] = field(default_factory=list)  # P*n RewardResult
    keep: Optional[torch.Tensor] = None  # [P*n] bool, False = sample left out of the loss
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        return [r.task for r in self.records]

    @property
    def has_images(self) -> bool:
        return any(m is not None for m in self.mm)

    def score(self, reward_cfg: RewardConfig) -> None:
        """Grade every response with the reward router; fill rewards [P, n] (metrics: `AdvantageStep`)."""
        from riskpo_mm.rewards import score_batch

        repeated = [r for r in self.records for _ in range(self.n)]
        self.results = score_batch(repeated, self.responses, weights=reward_weights(reward_cfg),
                                   workers=reward_cfg.workers, code_limits=code_limits(reward_cfg))
        scale = [reward_cfg.task_weights.get(r.task, 1.0) for r in repeated]
        rewards = torch.tensor([res.reward * s for res, s in zip(self.results, scale)], dtype=torch.float64)
        self.rewards = rewards.view(len(self.records), self.n)

    def keep_responses(self, keep: torch.Tensor) -> None:
        """Leave responses with keep[p, j] = False out of the loss (DAPO's dynamic sampling drops whole prompts)."""
        keep = keep.bool().reshape(-1)
        self.keep = keep if self.keep is None else self.keep & keep

    def experience_fields(self, adv: torch.Tensor, pad_token_id: int) -> dict[str, Any]:
        """Fields of OpenRLHF's Experience: sequences [B, S], attention_mask [B, S], action_mask / advantages [B, S-1]."""
        B = len(self.prompt_ids)
        lengths = [len(p) + len(r) for p, r in zip(self.prompt_ids, self.response_ids)]
        S = max(lengths)
        sequences = torch.full((B, S), pad_token_id, dtype=torch.long)
        attention = torch.zeros(B, S, dtype=torch.long)
        action = torch.zeros(B, S - 1, dtype=torch.bool)
        rollout_lp = torch.zeros(B, S - 1)
        for i, (p, r, lp) in enumerate(zip(self.prompt_ids, self.response_ids, self.rollout_logprobs)):
            L, T = len(p), len(r)
            sequences[i, :L], sequences[i, L : L + T] = p, r
            attention[i, : L + T] = 1
            action[i, L - 1 : L - 1 + T] = True
            rollout_lp[i, L - 1 : L - 1 + T] = lp
        if self.keep is not None:
            action &= self.keep[:, None]
        adv_flat = adv.reshape(-1).float()  # [P*n]
        info = {
            "reward": self.rewards.reshape(-1).float(),
            "accuracy": torch.tensor([float(r.accuracy) for r in self.results]),
            "format_ok": torch.tensor([float(r.format_ok) for r in self.results]),
        }
        return dict(
            sequences=sequences,
            attention_mask=attention,
            action_mask=action,
            rollout_log_probs=rollout_lp,
            advantages=adv_flat[:, None] * action.float(),
            rewards=self.rewards.reshape(-1).float(),
            scores=info["accuracy"],
            response_length=torch.tensor([float(len(r)) for r in self.response_ids]),
            total_length=torch.tensor([float(x) for x in lengths]),
            truncated=torch.tensor(self.truncated),
            prompts=[r.id for r in self.records for _ in range(self.n)],
            labels=[r.id for r in self.records for _ in range(self.n)],
            mm_train_inputs=list(self.mm),
            info=info,
        )
