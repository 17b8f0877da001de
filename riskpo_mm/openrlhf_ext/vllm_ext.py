"""OpenRLHF's vLLM rollout actor and worker extension, subclassed for RiskPO runs on any machine.

`RiskPORolloutActorImpl` (a subclass of OpenRLHF's ``RolloutRayActor``) changes what OpenRLHF
hard-codes when it builds an engine, and nothing else:

- the worker extension is `RiskPOWorkerWrap`, which adds a gloo weight sync for machines without
  CUDA (OpenRLHF's is PyNccl / CUDA IPC only);
- the engine dtype follows the actor's (``--ds.param_dtype``; OpenRLHF fixes ``bfloat16``, and its
  weight sync requires equal dtypes);
- without CUDA: eager mode and a KV cache of ``VLLM_CPU_KVCACHE_SPACE`` GiB (default 1);
- after every weight sync the prefix and encoder caches are dropped (they hold what the old
  weights computed);
- vision special tokens (image/video pads, vision start/end) get a logit bias of -100 in every
  request, as the local engine suppresses them in HF ``generate``: a sampled one breaks the next
  Qwen-VL training forward (``get_rope_index``).

`rollout_actor_class` binds the per-run settings and is what ``train_ray`` puts in place of
OpenRLHF's class before ``create_vllm_engines`` runs.
"""

from __future__ import annotations

import os
from copy import deepcopy
from typing import Any, Optional

import ray
import torch

from riskpo_mm.openrlhf_ext import compat

compat.install()

from openrlhf.trainer.ray.vllm_engine import RolloutRayActor  # noqa: E402
from openrlhf.trainer.ray.vllm_worker_wrap import WorkerWrap  # noqa: E402

WORKER_EXTENSION = f"{__name__}.RiskPOWorkerWrap"
VISION_TOKEN_ATTRS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
SUPPRESS_BIAS = -100.0  # the most negative logit bias vLLM accepts
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def vision_token_ids(model_path: str) -> list[int]:
    """Ids of the vision special tokens of a Qwen-VL model folder ([] for a text model)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=True)
    if getattr(config, "vision_config", None) is None:
        return []
    ids = {getattr(config, a, None) for a in VISION_TOKEN_ATTRS}
    ids |= {getattr(getattr(config, "text_config", None), a, None) for a in VISION_TOKEN_ATTRS}
    return sorted(i for i in ids if isinstance(i, int))


def with_suppressed_tokens(sampling_params: Any, token_ids: list[int]) -> Any:
    """A copy of ``sampling_params`` whose logit bias makes ``token_ids`` unsampleable."""
    if not token_ids:
        return sampling_params
    params = deepcopy(sampling_params)
    params.logit_bias = {**(params.logit_bias or {}), **{t: SUPPRESS_BIAS for t in token_ids}}
    return params


class RiskPOWorkerWrap(WorkerWrap):
    """OpenRLHF's vLLM worker extension plus a gloo weight sync (``--vllm.sync_backend gloo``).

    vLLM-CPU repacks linear weights at load time, so ``model.load_weights`` on a loaded engine fails;
    the gloo path collects one full sync (OpenRLHF flags its last parameter with ``empty_cache``)
    and hands it to the model runner's ``reload_weights``, which takes checkpoint-format weights in
    place. NCCL / CUDA IPC syncs go to OpenRLHF's code unchanged.
    """

    def init_process_group(self, master_address, master_port, rank_offset, world_size, group_name,
                           backend="nccl", use_ray=False):
        if backend != "gloo" or use_ray:
            return super().init_process_group(master_address, master_port, rank_offset, world_size, group_name,
                                              backend=backend, use_ray=use_ray)
        rank = torch.distributed.get_rank() + rank_offset
        self._model_update_with_ray = False
        self._model_update_group = compat.GlooBroadcastGroup(master_address, int(master_port), rank, world_size)
        self._pending_weights: list[tuple[str, torch.Tensor]] = []
        self.weight_syncs = 0

    def update_weight(self, name, dtype, shape, empty_cache=False):
        group = getattr(self, "_model_update_group", None)
        if not isinstance(group, compat.GlooBroadcastGroup):
            return super().update_weight(name, dtype, shape, empty_cache)
        if dtype != self.model_config.dtype:
            raise ValueError(f"weight sync: actor sends {name} as {dtype}, the vLLM engine runs {self.model_config.dtype}")
        weight = torch.empty(shape, dtype=dtype, device="cpu" if not torch.cuda.is_available() else "cuda")
        group.broadcast(weight, src=0)
        self._pending_weights.append((name, weight))
        if empty_cache:  # the last parameter of this sync
            weights, self._pending_weights = self._pending_weights, []
            self.model_runner.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)
            self.weight_syncs += 1

    def weight_sync_count(self) -> int:
        return getattr(self, "weight_syncs", 0)


class RiskPORolloutActorImpl(RolloutRayActor.__ray_actor_class__):
    """OpenRLHF's rollout actor with our worker extension, the actor's dtype and vision tokens suppressed."""

    engine_dtype: Optional[str] = None  # bound per run by `rollout_actor_class`
    cpu_kvcache_gib: float = 1.0

    async def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["worker_extension_cls"] = WORKER_EXTENSION
        if self.engine_dtype:
            kwargs["dtype"] = self.engine_dtype
        if not torch.cuda.is_available():
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{self.cpu_kvcache_gib:g}")
            kwargs["enforce_eager"] = True
        self.suppressed_token_ids = vision_token_ids(kwargs["model"])
        await super().__init__(*args, **kwargs)

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        params = with_suppressed_tokens(sampling_params, self.suppressed_token_ids)
        return await super().generate(prompt_token_ids, params, multi_modal_data)

    async def update_weight(self, name, dtype, shape, empty_cache=False):
        out = await super().update_weight(name, dtype, shape, empty_cache)
        if empty_cache:  # the sync's last parameter: drop what the old weights computed, on both sides
            await self.reset_caches()
        return out

    async def update_weight_cuda_ipc(self, name, dtype, shape, ipc_handles, empty_cache=False):
        out = await super().update_weight_cuda_ipc(name, dtype, shape, ipc_handles, empty_cache)
        if empty_cache:
            await self.reset_caches()
        return out

    async def reset_caches(self) -> None:
        """Drop the prefix and encoder caches after a weight sync.

        The model runner's ``reload_weights`` clears the worker's encoder cache while the scheduler
        still counts its entries ("Encoder cache miss" on the next repeated image); and with NCCL,
        cached image embeddings and prefixes would silently come from the old weights.
        """
        await self.llm.reset_prefix_cache()
        await self.llm.reset_encoder_cache()

    async def weight_sync_count(self) -> list[int]:
        """How many full gloo weight syncs each worker has applied (for checks and tests)."""
        return await self.llm.collective_rpc("weight_sync_count")

    async def sequence_logprobs(self, prompt_token_ids: list[int], continuation: list[int]) -> list[float]:
        """The engine's log-probs of ``continuation`` after ``prompt_token_ids`` (teacher-forced).

        Used to verify a weight sync: after it, these equal the actor's log-probs of the same tokens.
        """
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0)
        ids = list(prompt_token_ids) + list(continuation)
        out = await super().generate(ids, params, None)
        scored = out.prompt_logprobs[len(prompt_token_ids):]
        return [float(entry[tok].logprob) for entry, tok in zip(scored, continuation)]


def rollout_actor_class(param_dtype: str, cpu_kvcache_gib: float = 1.0):
    """The Ray actor class of the rollout engines for a run whose actor trains in ``param_dtype``."""
    if param_dtype not in DTYPES:
        raise ValueError(f"param_dtype must be one of {sorted(DTYPES)}, got {param_dtype!r}")
    bound = type("RiskPORolloutActor", (RiskPORolloutActorImpl,),
                 {"engine_dtype": DTYPES[param_dtype], "cpu_kvcache_gib": cpu_kvcache_gib, "__module__": __name__})
    return ray.remote(bound)
