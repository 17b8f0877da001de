"""Tiny Qwen-VL models: they load offline, generation never samples vision tokens, and the
training forward reproduces the generation log-probs on mixed image/text left-padded batches."""

import pytest
import torch
from PIL import Image
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from riskpo_mm.models.tiny import SPECS, build_config, make_tiny_model, make_tiny_text_model, non_embedding_params
from riskpo_mm.models.tiny import _model_class, main
from riskpo_mm.models.tokenizers import FAMILIES, build_tokenizer
from riskpo_mm.models.vlm import (
    generate,
    token_types,
    repeat_mm_inputs,
    select_mm_inputs,
    sequence_logprobs,
    vision_token_ids,
)

TEMPERATURE = 0.9


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """family -> (model float32 eval, processor, folder), built once per module."""
    root = tmp_path_factory.mktemp("tiny")
    out = {}
    for fam in FAMILIES:
        path = make_tiny_model(fam, "xs", "compact", root / fam, seed=0)
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
        proc = AutoProcessor.from_pretrained(path)
        proc.tokenizer.padding_side = "left"
        out[fam] = (model, proc, path)
    return out


def encode(proc, prompts):
    """prompts: list of (image or None, text) -> left-padded processor batch."""
    texts, images = [], []
    for image, text in prompts:
        content = ([{"type": "image"}] if image is not None else []) + [{"type": "text", "text": text}]
        msgs = [{"role": "user", "content": content}]
        texts.append(proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
        images += [image] if image is not None else []
    return dict(proc(text=texts, images=images or None, return_tensors="pt", padding=True))


def mixed_prompts():
    """Two images of different sizes (different grids) around one text-only prompt."""
    return [
        (Image.new("RGB", (84, 56), (200, 30, 30)), "Find x."),
        (None, "What is 2 + 3? Think step by step."),
        (Image.new("RGB", (112, 112), (30, 200, 30)), "Find the angle at A in triangle ABC."),
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_training_forward_logprobs_equal_generation_logprobs(tiny, family):
    model, proc, _ = tiny[family]
    batch = encode(proc, mixed_prompts())
    grids = batch["image_grid_thw"].tolist()
    assert grids[0] != grids[1] and (batch["attention_mask"] == 0).any()  # really mixed and left-padded
    ro = generate(model, batch, n=2, max_new_tokens=12, temperature=TEMPERATURE, seed=0)
    assert ro.sequences.shape[0] == 6 and ro.logprobs.shape == ro.action_mask.shape
    with torch.no_grad():
        lp = sequence_logprobs(model, ro.sequences, ro.attention_mask, ro.action_mask, ro.mm_inputs, TEMPERATURE)
    assert torch.allclose(lp, ro.logprobs, atol=1e-5, rtol=0)
    assert (ro.logprobs[ro.action_mask] < 0).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_text_only_batch_on_a_vlm_matches_too(tiny, family):
    model, proc, _ = tiny[family]
    ro = generate(model, encode(proc, [(None, "Hi"), (None, "Solve 2x + 1 = 5, please.")]), n=2, max_new_tokens=6,
                  temperature=TEMPERATURE, seed=0)
    assert ro.mm_inputs == {}
    with torch.no_grad():
        lp = sequence_logprobs(model, ro.sequences, ro.attention_mask, ro.action_mask, ro.mm_inputs, TEMPERATURE)
    assert torch.allclose(lp, ro.logprobs, atol=1e-5, rtol=0)


def test_training_forward_without_mm_token_type_ids_would_be_wrong(tiny):
    """Qwen2.5-VL silently mispositions images without mm_token_type_ids; ours passes them."""
    model, proc, _ = tiny["qwen2_5_vl"]
    ro = generate(model, encode(proc, mixed_prompts()), n=1, max_new_tokens=6, temperature=1.0, seed=1)
    with torch.no_grad():
        bad = model(ro.sequences, attention_mask=ro.attention_mask, **ro.mm_inputs).logits[:, -7:-1]
    bad_lp = torch.log_softmax(bad.float(), -1).gather(-1, ro.response_ids.unsqueeze(-1)).squeeze(-1)
    assert (bad_lp - ro.logprobs).abs().max() > 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_generation_never_emits_vision_tokens(tiny, family):
    model, proc, _ = tiny[family]
    banned = vision_token_ids(proc)
    assert vision_token_ids(model.config) == banned
    cols = torch.tensor(banned)

    def favour_vision_tokens(_module, _inputs, logits):  # unsuppressed, these would be sampled every step
        logits = logits.clone()
        logits[..., cols] += 30.0
        return logits

    handle = model.get_output_embeddings().register_forward_hook(favour_vision_tokens)
    try:
        ro = generate(model, encode(proc, mixed_prompts()), n=2, max_new_tokens=8, temperature=1.0, seed=0)
    finally:
        handle.remove()
    assert not torch.isin(ro.response_ids, cols).any()
    assert ro.response_ids.shape[1] == 8


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_5"])
def test_responses_end_at_first_eos_and_masks_follow(tiny, family):
    model, proc, _ = tiny[family]
    tok = proc.tokenizer
    eos = list(range(0, 1200))  # most of the vocabulary ends a response: sequences stop early and unevenly
    ro = generate(model, encode(proc, mixed_prompts()), n=4, max_new_tokens=10, temperature=1.0,
                  eos_token_ids=eos, pad_token_id=tok.pad_token_id, seed=3)
    resp, am = ro.response_ids, ro.action_mask
    lengths = am.sum(1)
    assert lengths.min() < lengths.max()
    for row, length in zip(resp, lengths.tolist()):
        ends = [i for i, t in enumerate(row.tolist()) if t in eos]
        assert length == (ends[0] + 1 if ends else row.numel())
        assert (row[length:] == tok.pad_token_id).all()
    assert torch.equal(am, torch.arange(am.shape[1]) < lengths[:, None])  # a prefix of ones
    assert torch.equal(ro.attention_mask[:, ro.prompt_length:], am.long())
    assert (ro.logprobs[~am] == 0).all()
    with torch.no_grad():
        lp = sequence_logprobs(model, ro.sequences, ro.attention_mask, am, ro.mm_inputs, 1.0)
    assert torch.allclose(lp, ro.logprobs, atol=1e-5, rtol=0)


def test_same_seed_same_samples(tiny):
    model, proc, _ = tiny["qwen3_vl"]
    batch = encode(proc, mixed_prompts())
    a = generate(model, batch, n=2, max_new_tokens=6, seed=7)
    b = generate(model, batch, n=2, max_new_tokens=6, seed=7)
    assert torch.equal(a.sequences, b.sequences)


def test_multimodal_inputs_are_repeated_per_image_for_each_sample(tiny):
    model, proc, _ = tiny["qwen2_vl"]
    prompts = mixed_prompts()
    prompts.insert(1, (Image.new("RGB", (56, 56), (0, 0, 255)), "Two images?"))
    batch = encode(proc, prompts)
    pix, grid = batch["pixel_values"], batch["image_grid_thw"]  # images of rows 0, 1, 3
    rep = repeat_mm_inputs(batch["input_ids"], {"pixel_values": pix, "image_grid_thw": grid}, 3, model.config)
    patches = grid.prod(-1).tolist()
    blocks = list(torch.split(pix, patches))
    expected_grid = torch.cat([grid[i : i + 1].repeat(3, 1) for i in range(3)])
    assert torch.equal(rep["image_grid_thw"], expected_grid)
    assert torch.equal(rep["pixel_values"], torch.cat([b for b in blocks for _ in range(3)]))
    # a micro-batch of rows 3 and 2 (row 2 is text-only) holds only row 3's image
    sub = select_mm_inputs(batch["input_ids"], {"pixel_values": pix, "image_grid_thw": grid}, [3, 2], model.config)
    assert torch.equal(sub["image_grid_thw"], grid[2:]) and torch.equal(sub["pixel_values"], blocks[2])
    with pytest.raises(ValueError, match="image_grid_thw"):
        repeat_mm_inputs(batch["input_ids"], {"pixel_values": pix, "image_grid_thw": grid[:2]}, 2, model.config)


def test_token_types_mark_images_1_and_videos_2(tiny):
    cfg = tiny["qwen3_vl"][0].config
    ids = torch.tensor([[5, cfg.image_token_id, cfg.image_token_id, 7, cfg.video_token_id]])
    assert token_types(ids, cfg).tolist() == [[0, 1, 1, 0, 2]]


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_folder_loads_with_auto_classes_and_round_trips(tiny, family, tmp_path):
    model, proc, path = tiny[family]
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.convert_tokens_to_ids("<|image_pad|>") == model.config.image_token_id
    assert proc.image_processor.patch_size == (14 if family in ("qwen2_vl", "qwen2_5_vl") else 16)
    model.save_pretrained(tmp_path)
    again = AutoModelForImageTextToText.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again(ids).logits)


def test_sizes_have_the_advertised_non_embedding_parameter_counts():
    tok = build_tokenizer("compact", "qwen2_vl")
    target = {"xs": 1.0e6, "s": 4.5e6, "m": 12e6}
    for fam in FAMILIES:
        for size in SPECS:
            with torch.device("meta"):
                model = _model_class(fam)(build_config(fam, size, tok, len(tok)))
            assert 0.75 * target[size] < non_embedding_params(model) < 1.25 * target[size], (fam, size)


def test_text_model_forward_matches_generation(tmp_path):
    path = make_tiny_text_model("xs", "compact", tmp_path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    texts = [tok.apply_chat_template([{"role": "user", "content": c}], tokenize=False, add_generation_prompt=True)
             for c in ("Solve 2x + 3 = 7.", "Hi")]
    batch = dict(tok(texts, return_tensors="pt", padding=True))
    ro = generate(model, batch, n=2, max_new_tokens=8, temperature=0.7, seed=0)
    with torch.no_grad():
        lp = sequence_logprobs(model, ro.sequences, ro.attention_mask, ro.action_mask, None, 0.7)
    assert torch.allclose(lp, ro.logprobs, atol=1e-5, rtol=0)


def test_cli_writes_a_folder_with_the_real_qwen_ids(tmp_path):
    assert main(["--family", "qwen2_5_vl", "--size", "xs", "--tokenizer", "compact", "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "config.json").exists() and (tmp_path / "m" / "tokenizer.json").exists()
    # the processor of the real vocabulary puts the real image id in the prompt (no model needed)
    from riskpo_mm.models.tiny import build_processor

    proc = build_processor("qwen2_vl", build_tokenizer("qwen", "qwen2_vl"))
    batch = encode(proc, [(Image.new("RGB", (56, 56)), "Hi")])
    ids = batch["input_ids"][0].tolist()
    assert ids[:3] == [151644, 8948, 198] and ids.count(151655) == 4 and 151652 in ids  # <|im_start|>system\n


def test_openrlhf_actor_forward_gives_the_same_logprobs(tiny):
    from riskpo_mm.openrlhf_ext.compat import install

    install()
    from openrlhf.models import Actor

    _, proc, path = tiny["qwen2_5_vl"]
    actor = Actor(str(path), attn_implementation="sdpa", param_dtype="bf16", temperature=TEMPERATURE)
    actor.model.float().eval()  # OpenRLHF loads bf16/fp16 only; compare in float32
    ro = generate(actor.model, encode(proc, mixed_prompts()), n=2, max_new_tokens=8, temperature=TEMPERATURE, seed=0)
    with torch.no_grad():
        lp = actor(ro.sequences, ro.action_mask, ro.attention_mask, **ro.mm_inputs)
    assert torch.allclose(lp, ro.logprobs, atol=1e-5, rtol=0)
