"""Rollouts with HF `generate`: encode prompts, sample n responses each, as a `RolloutBatch`.

The local engine's HF rollout backend and the HF evaluation sampler (`eval.harness.evaluate`) both
sample through `generate_rollouts`, so evaluation sees the training rollouts' prompt encoding and
sampler (vision tokens suppressed, stop at EOS).
"""

from __future__ import annotations

from typing import Optional

import torch

from riskpo_mm.data import ImageConfig, Record, encode_prompts
from riskpo_mm.generation.batch import RolloutBatch, model_inputs, prompt_vision_inputs, tokenizer_of
from riskpo_mm.models.vlm import generate


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
