"""Image loading and the one resize shared by rollout and training inputs.

`load_image` turns any record image reference into an RGB PIL image (no
network: http(s) URLs are refused). `resize_image` applies qwen-vl-utils'
`fetch_image` (smart_resize: sides multiples of patch*merge, pixel count in
[min_pixels, max_pixels], aspect ratio kept). Every path into the model goes
through it, and the processor is then told not to resize again, so the image
token count is fixed by this one function.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

# Vision patch size per family; every family merges 2x2 patches into one LLM token.
PATCH_SIZE: dict[str, int] = {"qwen2_vl": 14, "qwen2_5_vl": 14, "qwen3_vl": 16, "qwen3_5": 16}
MERGE_SIZE = 2
_B64 = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}$")
# An image is resized down to max_pixels before the model sees it; a source image declaring more
# than this many times that budget is refused from its header, before any pixel is decoded.
SOURCE_PIXELS_FACTOR = 64
DEFAULT_MAX_SOURCE_PIXELS = SOURCE_PIXELS_FACTOR * 401408  # 25.7 M pixels: 5000 x 5000 passes


class ImageError(ValueError):
    """An image reference that cannot be turned into pixels."""


@dataclass(frozen=True)
class ImageConfig:
    """Pixel budget per image (after resize). Defaults suit geometry figures at real scale."""

    min_pixels: int = 3136  # 56 x 56
    max_pixels: int = 401408  # 512 tokens of 28 x 28 px

    def __post_init__(self) -> None:
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"ImageConfig needs 0 < min_pixels <= max_pixels, got {self.min_pixels}, {self.max_pixels}")


def image_factor(family: str) -> int:
    """Side granularity in pixels of one merged image token (28 for Qwen2/2.5-VL, 32 for Qwen3-VL/3.5)."""
    if family not in PATCH_SIZE:
        raise ValueError(f"unknown model family {family!r}; expected one of {sorted(PATCH_SIZE)}")
    return PATCH_SIZE[family] * MERGE_SIZE


def source_pixel_limit(max_pixels: int | None) -> int:
    """Most pixels a source image may declare: ``SOURCE_PIXELS_FACTOR`` x the resize budget."""
    return SOURCE_PIXELS_FACTOR * max_pixels if max_pixels else DEFAULT_MAX_SOURCE_PIXELS


def load_image(ref: Any, base_dir: str | os.PathLike | None = None,
               max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS) -> Image.Image:
    """Decode an image reference into a fully loaded RGB image.

    ref: PIL image, bytes, HF image dict {"bytes", "path"}, a `data:image/...;base64,`
    URI, raw base64 text, a `file://` URI or a path (relative paths resolve against base_dir).
    An image whose header declares more than ``max_source_pixels`` is refused undecoded.
    """
    if isinstance(ref, Image.Image):
        return _rgb(ref)
    if isinstance(ref, dict):
        if ref.get("bytes") is not None:
            return _decode(bytes(ref["bytes"]), "image dict bytes", max_source_pixels)
        if ref.get("path"):
            return load_image(str(ref["path"]), base_dir, max_source_pixels)
        raise ImageError("image dict has neither 'bytes' nor 'path'")
    if isinstance(ref, (bytes, bytearray)):
        return _decode(bytes(ref), "image bytes", max_source_pixels)
    if not isinstance(ref, str):
        raise ImageError(f"unsupported image reference of type {type(ref).__name__}")
    if ref.startswith(("http://", "https://")):
        raise ImageError(f"image URLs are not fetched (no network access): {ref[:80]}; download the file and give its path")
    if ref.startswith("data:"):
        head, _, payload = ref.partition(",")
        if ";base64" not in head:
            raise ImageError("data URI images must be base64 encoded (data:image/png;base64,...)")
        return _decode(_b64decode(payload), "base64 data URI", max_source_pixels)
    path = resolve_image_path(ref, base_dir)
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return _decode(f.read(), path, max_source_pixels)
    if looks_like_base64(ref):
        return _decode(_b64decode(ref), "base64 text", max_source_pixels)
    raise ImageError(f"image file not found: {path}")


def looks_like_base64(ref: str) -> bool:
    """Whether a string reference is raw base64 image data rather than a path."""
    return len(ref) >= 64 and bool(_B64.match(ref))


def image_bytes(ref: Any) -> bytes | None:
    """The encoded bytes an in-memory reference carries (bytes, {bytes} dict, data URI, base64 text), else None."""
    if isinstance(ref, (bytes, bytearray)):
        return bytes(ref)
    if isinstance(ref, dict) and ref.get("bytes") is not None:
        return bytes(ref["bytes"])
    if isinstance(ref, str) and ref.startswith("data:"):
        head, _, payload = ref.partition(",")
        if ";base64" not in head:
            raise ImageError("data URI images must be base64 encoded (data:image/png;base64,...)")
        return _b64decode(payload)
    return None


def check_declared_size(im: Image.Image, what: str, max_source_pixels: int) -> None:
    """Refuse an opened (not yet decoded) image whose header declares too many pixels."""
    w, h = im.size
    if w * h > max_source_pixels:
        raise ImageError(f"image ({what}) declares {w} x {h} = {w * h} pixels, more than the "
                         f"{max_source_pixels} allowed ({SOURCE_PIXELS_FACTOR} x data.max_pixels); not decoded")


def resolve_image_path(ref: str, base_dir: str | os.PathLike | None = None) -> str:
    """Absolute path of a path/file:// reference; relative paths are taken from base_dir."""
    path = ref[7:] if ref.startswith("file://") else ref
    path = os.path.expanduser(path)
    if not os.path.isabs(path) and base_dir is not None:
        path = os.path.join(base_dir, path)
    return os.path.abspath(path)


def resize_image(img: Image.Image, family: str, min_pixels: int, max_pixels: int) -> Image.Image:
    """qwen-vl-utils smart resize for `family`: sides multiples of patch*2, pixels within [min, max]."""
    from qwen_vl_utils import fetch_image

    patch = image_factor(family) // MERGE_SIZE
    return fetch_image({"image": img, "min_pixels": min_pixels, "max_pixels": max_pixels}, image_patch_size=patch)


def num_image_tokens(img: Image.Image, family: str) -> int:
    """LLM placeholder tokens for an already resized image: (H/f) * (W/f), f = patch*merge."""
    f = image_factor(family)
    w, h = img.size
    if w % f or h % f:
        raise ValueError(f"image {w}x{h} is not resized for {family} (sides must be multiples of {f})")
    return (h // f) * (w // f)


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ImageError(f"invalid base64 image data ({e})") from None


def _decode(data: bytes, what: str, max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as im:  # lazy: only the header is read here
            check_declared_size(im, what, max_source_pixels)
            im.load()
            return _rgb(im)
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"cannot decode image ({what}): {e}") from None


def _rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGBA":
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    return im.convert("RGB")
