"""Rollouts for the local engine: encode prompts, sample n responses, grade them.

`RolloutBatch` keeps every sample unpadded (prompt ids, response ids up to and
including EOS, its images) so it converts exactly into OpenRLHF's `Experience`
layout: prompt + response right-padded, `action_mask[t]` marking that token
t + 1 was generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from riskpo_mm.config import RewardConfig
from riskpo_mm.data import ImageConfig, PromptBatch, Record, encode_prompts
from riskpo_mm.models.vlm import generate

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


def reward_weights(reward_cfg: RewardConfig):
    """The router's RewardWeights with the config's per-task weights and reward form."""
    from riskpo_mm.rewards import RewardWeights

    return RewardWeights.from_dict({
        "binary_form": reward_cfg.binary_form,
        "tasks": {task: w.model_dump() for task, w in reward_cfg.weights.items()},
    })


def eval_settings(cfg) -> dict:
    """The harness keywords of a run's evaluation (`eval.*`, the rollout batch, reward weights, system
    prompt): the same for the local engine's and the Ray driver's evaluations."""
    ev = cfg.eval
    return dict(n=ev.n, ks=ev.k, temperature=ev.temperature, max_new_tokens=ev.max_new_tokens or cfg.rollout.max_new_tokens,
                batch_size=cfg.rollout.prompts_per_step, seed=cfg.seed, reward_weights=reward_weights(cfg.reward),
                system_prompt=cfg.data.system_prompt)


def code_limits(reward_cfg: RewardConfig):
    """The sandbox limits of the config's code settings (the Ray reward function builds the same)."""
    from riskpo_mm.rewards.sandbox import SandboxLimits

    return SandboxLimits(timeout_s=reward_cfg.code_timeout_s, memory_mb=reward_cfg.code_memory_mb,
                         isolation=reward_cfg.code_isolation)


@torch.no_grad()
def generate_rollouts(
    model,
    processor,
    records: list[Record],
    *,
    family: str,
    image_config: ImageConfig,
    n: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    system_prompt: Optional[str] = None,
    seed: Optional[int] = None,
) -> RolloutBatch:
    """Sample n responses for each record with the model's own sampling policy."""
    param = next(model.parameters())
    pb = encode_prompts(records, processor, image_config, family, system_prompt=system_prompt)
    tok = tokenizer_of(processor)
    out = generate(model, model_inputs(pb, param.device, param.dtype), n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                   top_p=top_p, pad_token_id=tok.pad_token_id, seed=seed)
    L = out.prompt_length
    mm_prompt = prompt_vision_inputs(pb)
    prompt_ids, response_ids, logprobs, mm, truncated = [], [], [], [], []
    seqs, am, act, lp = out.sequences.cpu(), out.attention_mask.cpu(), out.action_mask.cpu(), out.logprobs.cpu()
    for i in range(seqs.shape[0]):
        keep_prompt = am[i, :L].bool()
        resp_mask = act[i].bool()
        prompt_ids.append(seqs[i, :L][keep_prompt])
        response_ids.append(seqs[i, L:][resp_mask])
        logprobs.append(lp[i][resp_mask].float())
        mm.append(mm_prompt[i // n])
        truncated.append(not _ends_with_eos(response_ids[-1], model))
    texts = tok.batch_decode(response_ids, skip_special_tokens=True)
    return RolloutBatch(records=list(records), n=n, prompt_ids=prompt_ids, response_ids=response_ids,
                        rollout_logprobs=logprobs, mm=mm, responses=texts, truncated=truncated)


def _ends_with_eos(ids: torch.Tensor, model) -> bool:
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    return len(ids) > 0 and int(ids[-1]) in eos
