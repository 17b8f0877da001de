"""Shared fixtures for the data tests: processors from the models helper's builders (compact tokenizer)."""

from __future__ import annotations

import functools

from PIL import Image, ImageDraw


@functools.lru_cache(maxsize=None)
def processor_for(family: str):
    """The family's processor with the compact tokenizer, as `riskpo-mm make-tiny-model` writes it."""
    from riskpo_mm.models.tiny import build_processor
    from riskpo_mm.models.tokenizers import build_tokenizer

    return build_processor(family, build_tokenizer("compact", family))


def png(path, size=(64, 48), color="black") -> str:
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).rectangle([4, 4, size[0] - 5, size[1] - 5], outline=color, width=2)
    img.save(path, format="PNG")
    return str(path)
