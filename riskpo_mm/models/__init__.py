"""Offline models: Qwen tokenizers (real and compact), tiny random Qwen-VL models, and the
generation / training-forward functions the trainers use around HF models."""

from riskpo_mm.models.tiny import make_tiny_model, make_tiny_text_model
from riskpo_mm.models.tokenizers import build_compact_tokenizer, build_qwen_tokenizer, build_tokenizer
from riskpo_mm.models.vlm import (
    Rollout,
    generate,
    repeat_mm_inputs,
    select_mm_inputs,
    sequence_logprobs,
    vision_token_ids,
)

__all__ = [
    "Rollout",
    "build_compact_tokenizer",
    "build_qwen_tokenizer",
    "build_tokenizer",
    "generate",
    "make_tiny_model",
    "make_tiny_text_model",
    "repeat_mm_inputs",
    "select_mm_inputs",
    "sequence_logprobs",
    "vision_token_ids",
]
