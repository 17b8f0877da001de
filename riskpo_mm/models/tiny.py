"""Tiny random-weight Qwen-VL models, built offline for tests and the CPU demo.

`make_tiny_model` writes a folder (config, weights, tokenizer, processor,
generation config) that HF Auto classes and OpenRLHF's Actor load without a
hub. Shapes follow the real families (M-RoPE sections summing to head_dim/2,
Qwen3.5's partial rotary and linear-attention layers, Qwen2.5-VL window
attention with full-attention blocks, Qwen3-VL deepstack, patch 14 for
Qwen2/2.5-VL and 16 for Qwen3-VL/3.5), only much smaller.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerFast, ProcessorMixin

from riskpo_mm.models.tokenizers import FAMILIES, build_tokenizer

SIZES = ("xs", "s", "m")
QWEN_VOCAB_SIZE = {"qwen2": 151936, "qwen3_5": 248320}  # padded embedding sizes of the real models


@dataclass(frozen=True)
class TinySpec:
    """Widths of one size. Non-embedding parameters: xs ~1M, s ~4.5M, m ~12M (vision tower included)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    v_hidden: int
    v_depth: int
    v_heads: int
    v_ffn: int


SPECS = {
    "xs": TinySpec(hidden=128, layers=2, heads=4, kv_heads=2, head_dim=32, ffn=640,
                   v_hidden=64, v_depth=2, v_heads=4, v_ffn=256),
    "s": TinySpec(hidden=256, layers=4, heads=8, kv_heads=2, head_dim=32, ffn=896,
                  v_hidden=128, v_depth=2, v_heads=4, v_ffn=512),
    "m": TinySpec(hidden=384, layers=6, heads=12, kv_heads=4, head_dim=32, ffn=1024,
                  v_hidden=192, v_depth=3, v_heads=6, v_ffn=768),
}


def patch_size_for(family: str) -> int:
    """Vision patch size of a family: 14 for Qwen2/2.5-VL, 16 for Qwen3-VL/3.5 (merge size 2 for all)."""
    return 14 if family in ("qwen2_vl", "qwen2_5_vl") else 16


def _mrope_section(family: str, rotary_dim: int) -> list[int]:
    """Split rotary_dim/2 frequencies into (temporal, height, width) in the real models' proportions:
    Qwen2/2.5-VL [16, 24, 24] of 64, Qwen3-VL [24, 20, 20] of 64, Qwen3.5 [11, 11, 10] of 32."""
    half = rotary_dim // 2
    if family in ("qwen2_vl", "qwen2_5_vl"):
        t = half // 4
        h = (half - t + 1) // 2
        return [t, h, half - t - h]
    if family == "qwen3_vl":
        h = round(half * 20 / 64)
        return [half - 2 * h, h, h]
    t = -(-half // 3)
    return [t, t, half - 2 * t]


def build_config(family: str, size: str, tok: PreTrainedTokenizerFast, vocab_size: int):
    """The transformers config of a tiny `family` model of `size` with `tok`'s special-token ids."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3_5Config, Qwen3VLConfig

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    if size not in SPECS:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
    sp = SPECS[size]
    ids = dict(
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
    )
    text = dict(
        vocab_size=vocab_size, hidden_size=sp.hidden, intermediate_size=sp.ffn, num_hidden_layers=sp.layers,
        num_attention_heads=sp.heads, num_key_value_heads=sp.kv_heads, max_position_embeddings=4096,
        bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    patch = patch_size_for(family)
    if family in ("qwen2_vl", "qwen2_5_vl"):
        # head_dim = hidden / heads for these families.
        hd = sp.hidden // sp.heads
        text["rope_parameters"] = {
            "rope_type": "default", "rope_theta": 1e6, "mrope_section": _mrope_section(family, hd),
        }
        if family == "qwen2_vl":
            vision = dict(depth=sp.v_depth, embed_dim=sp.v_hidden, hidden_size=sp.hidden, num_heads=sp.v_heads,
                          mlp_ratio=sp.v_ffn // sp.v_hidden, patch_size=patch, spatial_merge_size=2)
            return Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)
        vision = dict(depth=sp.v_depth, hidden_size=sp.v_hidden, intermediate_size=sp.v_ffn, num_heads=sp.v_heads,
                      out_hidden_size=sp.hidden, patch_size=patch, spatial_merge_size=2, window_size=112,
                      fullatt_block_indexes=[sp.v_depth - 1])
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)
    vision = dict(depth=sp.v_depth, hidden_size=sp.v_hidden, intermediate_size=sp.v_ffn, num_heads=sp.v_heads,
                  out_hidden_size=sp.hidden, patch_size=patch, spatial_merge_size=2, num_position_embeddings=256)
    text["head_dim"] = sp.head_dim
    if family == "qwen3_vl":
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 5e6, "mrope_interleaved": True,
                                   "mrope_section": _mrope_section(family, sp.head_dim)}
        vision["deepstack_visual_indexes"] = [0] if sp.v_depth <= 2 else [0, 1]
        return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)
    # Qwen3.5: 3 linear-attention (gated delta) layers per full-attention layer, partial rotary 1/4.
    head_dim = 2 * sp.head_dim  # rotary on 1/4 of it, as in the real model (256 -> 64)
    text.update(
        head_dim=head_dim, partial_rotary_factor=0.25,
        rope_parameters={"rope_type": "default", "rope_theta": 1e7, "mrope_interleaved": True,
                         "mrope_section": _mrope_section(family, head_dim // 4), "partial_rotary_factor": 0.25},
        layer_types=["linear_attention" if (i + 1) % 4 else "full_attention" for i in range(sp.layers)],
        linear_key_head_dim=sp.head_dim, linear_value_head_dim=sp.head_dim,
        linear_num_key_heads=sp.kv_heads, linear_num_value_heads=sp.heads,
    )
    if "full_attention" not in text["layer_types"]:
        text["layer_types"][-1] = "full_attention"
    return Qwen3_5Config(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)


def build_processor(family: str, tok: PreTrainedTokenizerFast) -> ProcessorMixin:
    """The family's processor with pixel bounds for tiny images: 4 to 36 merged vision tokens
    (56..168 px squares for patch 14, 64..192 px for patch 16)."""
    from transformers import Qwen2VLImageProcessor
    from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    patch = patch_size_for(family)
    unit = (patch * 2) ** 2  # pixels per merged vision token
    pixels = dict(min_pixels=4 * unit, max_pixels=36 * unit, patch_size=patch, merge_size=2, temporal_patch_size=2)
    qwen3 = family in ("qwen3_vl", "qwen3_5")
    norm = dict(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]) if qwen3 else {}
    image_processor = Qwen2VLImageProcessor(**pixels, **norm)
    if qwen3:
        video_processor = Qwen3VLVideoProcessor(
            size={"shortest_edge": 4 * unit, "longest_edge": 36 * 2 * unit}, patch_size=patch, merge_size=2,
            temporal_patch_size=2, **norm,
        )
        cls = Qwen3VLProcessor
    else:
        video_processor = Qwen2VLVideoProcessor(**pixels)
        cls = Qwen2_5_VLProcessor if family == "qwen2_5_vl" else Qwen2VLProcessor
    return cls(image_processor=image_processor, tokenizer=tok, video_processor=video_processor,
               chat_template=tok.chat_template)


def _model_class(family: str) -> type[PreTrainedModel]:
    import transformers

    return {
        "qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
        "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
        "qwen3_vl": transformers.Qwen3VLForConditionalGeneration,
        "qwen3_5": transformers.Qwen3_5ForConditionalGeneration,
    }[family]


def _vocab_size(tokenizer: str, family: str, tok: PreTrainedTokenizerFast) -> int:
    if tokenizer == "qwen":
        return QWEN_VOCAB_SIZE["qwen3_5" if family == "qwen3_5" else "qwen2"]
    return len(tok)


def _generation_config(tok: PreTrainedTokenizerFast) -> GenerationConfig:
    return GenerationConfig(
        eos_token_id=[tok.eos_token_id, tok.pad_token_id], pad_token_id=tok.pad_token_id,
        bos_token_id=tok.pad_token_id, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
    )


def non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters outside the token embedding and the LM head."""
    skip = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def make_tiny_model(
    family: str, size: str = "s", tokenizer: str = "compact", out_dir: str | Path = "tiny-model", seed: int = 0
) -> Path:
    """Write a random-weight `family` model of `size` with tokenizer `tokenizer` ('qwen' real
    vocabulary or 'compact' 2k BPE) and its processor to `out_dir`; returns the folder."""
    tok = build_tokenizer(tokenizer, family)
    config = build_config(family, size, tok, _vocab_size(tokenizer, family, tok))
    torch.manual_seed(seed)
    model = _model_class(family)(config).eval()
    model.generation_config = _generation_config(tok)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    build_processor(family, tok).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def make_tiny_text_model(
    size: str = "s", tokenizer: str = "compact", out_dir: str | Path = "tiny-text-model", seed: int = 0
) -> Path:
    """Write a random-weight Qwen2 text-only causal LM (same widths as the VL text tower of
    `size`) with the Qwen2-VL chat template; for text-only tests."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if size not in SPECS:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
    sp = SPECS[size]
    tok = build_tokenizer(tokenizer, "qwen2_vl")
    config = Qwen2Config(
        vocab_size=_vocab_size(tokenizer, "qwen2_vl", tok), hidden_size=sp.hidden, intermediate_size=sp.ffn,
        num_hidden_layers=sp.layers, num_attention_heads=sp.heads, num_key_value_heads=sp.kv_heads,
        max_position_embeddings=4096, bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config = _generation_config(tok)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """`riskpo-mm make-tiny-model`: write a tiny random-weight Qwen-VL model folder."""
    p = argparse.ArgumentParser(prog="riskpo-mm make-tiny-model", description=main.__doc__)
    p.add_argument("--family", required=True, choices=FAMILIES + ("qwen2", "qwen2_text"), metavar="FAMILY",
                   help=f"{', '.join(FAMILIES)}, or qwen2 (a text-only Qwen2 causal LM; the spelling of model.family "
                        "and model.tiny.family in configs; qwen2_text is accepted too)")
    p.add_argument("--size", default="s", choices=SIZES, help="xs ~1M, s ~4.5M, m ~12M non-embedding parameters")
    p.add_argument("--tokenizer", default="compact", choices=("qwen", "compact"),
                   help="qwen: the real Qwen vocabulary; compact: 2k BPE (fast on a CPU)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.family in ("qwen2", "qwen2_text"):
        out = make_tiny_text_model(a.size, a.tokenizer, a.out, a.seed)
    else:
        out = make_tiny_model(a.family, a.size, a.tokenizer, a.out, a.seed)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
