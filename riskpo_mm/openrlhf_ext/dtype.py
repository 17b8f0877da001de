"""float32 training through OpenRLHF, which maps only ``bf16`` / ``fp16`` (``convert_to_torch_dtype``).

``--ds.param_dtype fp32`` (our parser adds the choice) trains in float32: DeepSpeed with neither
bf16 nor fp16 enabled, the model loaded in float32. Both engines build OpenRLHF's ``Actor`` inside
`fp32_param_dtype` for that.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

PARAM_DTYPES = ("bf16", "fp16", "fp32")


@contextlib.contextmanager
def fp32_param_dtype() -> Iterator[None]:
    """While active, OpenRLHF's ``convert_to_torch_dtype("fp32")`` returns ``torch.float32``."""
    import openrlhf.utils.utils as openrlhf_utils
    import torch

    original = openrlhf_utils.convert_to_torch_dtype

    def convert(param_dtype: str) -> torch.dtype:
        return torch.float32 if param_dtype == "fp32" else original(param_dtype)

    openrlhf_utils.convert_to_torch_dtype = convert
    try:
        yield
    finally:
        openrlhf_utils.convert_to_torch_dtype = original


def keep_fp32_grad_norm(engine: Any) -> None:
    """Make a float32 ZeRO-0 DeepSpeed engine report the gradient norm it clips at.

    That path clips through `clip_fp32_gradients` and drops the norm, so `get_global_grad_norm` (OpenRLHF's
    `actor_grad_norm`) would read 0; every other path records it itself and is left alone.
    """
    if engine.fp16_enabled() or engine.bfloat16_enabled() or engine.amp_enabled() or engine.zero_optimization():
        return
    from deepspeed.runtime.utils import clip_grad_norm_

    def clip_and_keep() -> None:
        engine._global_grad_norm = clip_grad_norm_(engine.module.parameters(), engine.gradient_clipping(), mpu=engine.mpu)

    engine.clip_fp32_gradients = clip_and_keep
