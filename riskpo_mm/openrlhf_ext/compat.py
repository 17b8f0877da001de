"""CPU compatibility for OpenRLHF 0.11.2: stand-ins that exist only where the real thing is absent.

OpenRLHF imports ``flash_attn`` at module level (``openrlhf/models/ring_attn_utils.py``) and calls
``torch.cuda.set_device / synchronize / current_device`` in its DeepSpeed strategy, so its Actor,
PolicyLoss and DeepspeedStrategy neither import nor run on a machine without CUDA. ``install()``
fixes exactly that, and nothing else:

- ``flash_attn`` (only if no real ``flash_attn`` can be found): a small package with a proper
  ``ModuleSpec`` (transformers' availability probe calls ``importlib.util.find_spec`` and crashes
  on a module without one) holding pure-torch versions of ``bert_padding.{index_first_axis,
  pad_input, unpad_input, rearrange}`` and ``utils.distributed.all_gather``. It has no ``ops``
  subpackage, so OpenRLHF's optional Triton cross-entropy import still falls back to torch.
- CUDA calls (only if ``torch.cuda.is_available()`` is False, where they would raise):
  ``set_device`` and ``synchronize`` become no-ops, ``current_device`` returns ``cpu``, and
  ``init_device_mesh("cuda", ...)`` builds a CPU mesh. DeepSpeed picks its CPU accelerator
  (gloo) by itself.

``install_torchvision_hook()`` covers the CPU install profile: the registry's torchvision wheels
are CUDA builds whose compiled ops (``torchvision._C``) cannot load beside the CPU torch, and
``torchvision/_meta_registrations.py`` then fails at import (``operator torchvision::nms does not
exist``). The hook is an import finder that, right before that module runs, defines the two op
schemas it registers fakes for (``nms``, ``qnms``) *only if* the compiled library did not provide
them. Only torchvision's Python transforms are used here (the Qwen-VL processors import
``torchvision.transforms.v2``). ``python -m riskpo_mm.openrlhf_ext.compat install-hook`` writes a
``.pth`` file so every interpreter of the venv (Ray workers, vLLM engine processes) has the hook;
it imports nothing until torchvision is imported.

All functions are idempotent.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import torch

STANDIN_MARKER = "__riskpo_mm_standin__"


# ── pure-torch flash_attn.bert_padding / flash_attn.utils.distributed ──


def index_first_axis(input: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Rows ``indices`` of ``input`` along its first axis (``input: [N, ...] -> [len(indices), ...]``)."""
    return input[indices]


def unpad_input(
    hidden_states: torch.Tensor, attention_mask: torch.Tensor, unused_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """Drop padding: ``hidden_states: [B, S, ...]``, ``attention_mask: [B, S]`` -> ``[nnz, ...]``.

    Returns ``(unpadded, indices, cu_seqlens, max_seqlen, used_seqlens)`` like flash_attn >= 2.7:
    ``indices`` are the flat positions kept, ``cu_seqlens: [B+1]`` int32 cumulative lengths.
    """
    import torch

    all_masks = attention_mask + unused_mask if unused_mask is not None else attention_mask
    seqlens = all_masks.sum(dim=-1, dtype=torch.int32)  # [B]
    used_seqlens = attention_mask.sum(dim=-1, dtype=torch.int32)  # [B]
    indices = torch.nonzero(all_masks.flatten(), as_tuple=False).flatten()
    max_seqlen = int(seqlens.max().item()) if seqlens.numel() else 0
    cu_seqlens = torch.nn.functional.pad(torch.cumsum(seqlens, dim=0, dtype=torch.int32), (1, 0))
    flat = hidden_states.reshape(-1, *hidden_states.shape[2:])  # [B*S, ...]
    return index_first_axis(flat, indices), indices, cu_seqlens, max_seqlen, used_seqlens


def pad_input(hidden_states: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int) -> torch.Tensor:
    """Inverse of ``unpad_input``: ``[nnz, ...]`` -> ``[batch, seqlen, ...]`` with zeros at padding."""
    output = hidden_states.new_zeros(batch * seqlen, *hidden_states.shape[1:])
    output = output.index_put((indices,), hidden_states)  # out-of-place keeps autograd to hidden_states
    return output.view(batch, seqlen, *hidden_states.shape[1:])


def all_gather(input_: torch.Tensor, process_group: Any) -> torch.Tensor:
    """Concatenate ``input_`` from every rank of ``process_group`` along dim 0 (autograd-aware)."""
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_gather as _autograd_all_gather

    if dist.get_world_size(process_group) == 1:
        return input_
    return torch.cat(_autograd_all_gather(input_.contiguous(), group=process_group), dim=0)


# ── module registration ──


def _real_module_available(name: str) -> bool:
    """True if ``name`` is importable from something other than one of our stand-ins."""
    module = sys.modules.get(name)
    if module is not None:
        return not getattr(module, STANDIN_MARKER, False)
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _new_module(name: str, is_package: bool, attrs: dict[str, Any]) -> types.ModuleType:
    spec = importlib.machinery.ModuleSpec(name, loader=None, is_package=is_package)
    module = importlib.util.module_from_spec(spec)
    if is_package:
        module.__path__ = []  # a package that can hold our registered submodules, nothing on disk
    module.__dict__.update(attrs)
    setattr(module, STANDIN_MARKER, True)
    return module


def _register(tree: dict[str, tuple[bool, dict[str, Any]]]) -> None:
    """Register ``{dotted name: (is_package, attributes)}`` and link children onto parents."""
    for name, (is_package, attrs) in tree.items():
        sys.modules[name] = _new_module(name, is_package, attrs)
    for name in tree:
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, sys.modules[name])


def install_flash_attn_standin() -> bool:
    """Register the pure-torch ``flash_attn`` stand-in if no real flash_attn exists. Returns whether it is active."""
    if _real_module_available("flash_attn"):
        return False
    if getattr(sys.modules.get("flash_attn"), STANDIN_MARKER, False):
        return True
    from einops import rearrange, repeat

    _register(
        {
            "flash_attn": (True, {"__version__": "0.0.0+riskpo_mm.standin"}),
            "flash_attn.bert_padding": (
                False,
                dict(
                    index_first_axis=index_first_axis,
                    pad_input=pad_input,
                    unpad_input=unpad_input,
                    rearrange=rearrange,
                    repeat=repeat,
                ),
            ),
            "flash_attn.utils": (True, {}),
            "flash_attn.utils.distributed": (False, dict(all_gather=all_gather)),
        }
    )
    return True


# ── CUDA call fallbacks ──


def _fallback(original, result_fn):
    """A replacement for ``original`` that returns ``result_fn()`` and carries the stand-in marker."""

    @functools.wraps(original)
    def replacement(*_args: Any, **_kwargs: Any):
        return result_fn()

    setattr(replacement, STANDIN_MARKER, True)
    return replacement


def _mesh_on_cpu_without_cuda(init_device_mesh):
    import torch

    @functools.wraps(init_device_mesh)
    def wrapper(device_type: str, *args: Any, **kwargs: Any):
        if device_type == "cuda" and not torch.cuda.is_available():
            device_type = "cpu"
        return init_device_mesh(device_type, *args, **kwargs)

    wrapper.__riskpo_mm_standin__ = True
    return wrapper


def install_cuda_fallbacks(cuda_available: bool | None = None) -> bool:
    """Where CUDA is unavailable, turn OpenRLHF's unconditional CUDA calls into CPU equivalents.

    Only functions that would otherwise raise are replaced. Returns whether the fallbacks are active.
    """
    import torch

    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return False
    if getattr(torch.cuda.current_device, STANDIN_MARKER, False):
        return True
    torch.cuda.set_device = _fallback(torch.cuda.set_device, lambda: None)
    torch.cuda.synchronize = _fallback(torch.cuda.synchronize, lambda: None)
    torch.cuda.current_device = _fallback(torch.cuda.current_device, lambda: torch.device("cpu"))
    torch.cuda.current_stream = _fallback(torch.cuda.current_stream, lambda: None)

    import torch.distributed.device_mesh as device_mesh

    if hasattr(device_mesh, "init_device_mesh") and not getattr(device_mesh.init_device_mesh, STANDIN_MARKER, False):
        device_mesh.init_device_mesh = _mesh_on_cpu_without_cuda(device_mesh.init_device_mesh)
    # The strategy binds init_device_mesh at import time; re-point it if it was imported before us.
    strategy_module = sys.modules.get("openrlhf.utils.deepspeed.deepspeed")
    if strategy_module is not None:
        strategy_module.init_device_mesh = device_mesh.init_device_mesh
    return True


@contextlib.contextmanager
def cuda_index_while_constructing() -> Iterator[None]:
    """Without CUDA, report device index 0 while OpenRLHF objects that only *name* a CUDA device are built.

    ``NaiveReplayBuffer.__init__`` formats ``f"cuda:{torch.cuda.current_device()}"`` into a device it uses
    only in ``sample()``, which the local engine never calls; ``"cuda:cpu"`` is not a valid name. Where
    CUDA is available this does nothing.
    """
    import torch

    if not is_standin(torch.cuda.current_device):
        yield
        return
    fallback = torch.cuda.current_device
    torch.cuda.current_device = _fallback(fallback, lambda: 0)
    try:
        yield
    finally:
        torch.cuda.current_device = fallback


# ── torchvision beside the CPU torch ──

TORCHVISION_STANDIN_OPS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_torchvision_library: list[Any] = []  # keeps the defining torch.library.Library alive
PTH_NAME = "riskpo_mm_torchvision_hook.pth"


def _torch_op_exists(namespace: str, name: str) -> bool:
    import torch

    try:
        getattr(getattr(torch.ops, namespace), name).default
    except (AttributeError, RuntimeError):
        return False
    return True


def define_missing_torchvision_ops() -> list[str]:
    """Define the schemas of torchvision ops its compiled library did not provide; returns those defined.

    Called right before ``torchvision._meta_registrations`` runs (after ``torchvision.extension`` tried
    to load ``_C``): with working compiled ops it defines nothing.
    """
    import torch

    missing = [name for name in TORCHVISION_STANDIN_OPS if not _torch_op_exists("torchvision", name)]
    if missing:
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for name in missing:
            lib.define(TORCHVISION_STANDIN_OPS[name])
        _torchvision_library.append(lib)
    return missing


class _TorchvisionMetaHook(importlib.abc.MetaPathFinder):
    """Runs `define_missing_torchvision_ops` before ``torchvision._meta_registrations`` executes."""

    target = "torchvision._meta_registrations"
    defined: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname != self.target:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original_exec = loader.exec_module
        hook = self

        def exec_module(module: types.ModuleType) -> None:
            hook.defined = define_missing_torchvision_ops()
            original_exec(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install_torchvision_hook() -> bool:
    """Register the torchvision import hook (before torchvision is imported). Returns whether it is registered."""
    if any(isinstance(f, _TorchvisionMetaHook) for f in sys.meta_path):
        return True
    if "torchvision._meta_registrations" in sys.modules:
        return False  # too late: torchvision imported already (and worked, or failed)
    sys.meta_path.insert(0, _TorchvisionMetaHook())
    return True


def torchvision_standin_ops() -> list[str]:
    """The torchvision op schemas this process defined in place of its compiled library ([] if none)."""
    return [op for f in sys.meta_path if isinstance(f, _TorchvisionMetaHook) for op in f.defined]


def write_pth_hook(site_dir: str | None = None) -> str:
    """Write the ``.pth`` file that installs the torchvision hook in every interpreter of this environment."""
    import os
    import sysconfig

    site_dir = site_dir or sysconfig.get_paths()["purelib"]
    path = os.path.join(site_dir, PTH_NAME)
    with open(path, "w", encoding="utf-8") as f:
        f.write("import riskpo_mm.openrlhf_ext.compat as _c; _c.install_torchvision_hook()\n")
    return path


# ── actor -> vLLM weight sync without NCCL ──


class GlooBroadcastGroup:
    """A gloo process group with the ``broadcast(tensor, src, stream)`` call OpenRLHF makes on PyNccl's communicator."""

    def __init__(self, host: str, port: int, rank: int, world_size: int) -> None:
        from vllm.distributed.utils import stateless_init_torch_distributed_process_group

        self.rank, self.world_size = rank, world_size
        self.group = stateless_init_torch_distributed_process_group(host, port, rank, world_size, backend="gloo")

    def broadcast(self, tensor: "torch.Tensor", src: int = 0, stream: Any = None) -> None:
        self.group.broadcast(tensor, src).wait()


def gloo_stateless_init_process_group(master_address: str, master_port: int, rank: int, world_size: int,
                                      device: Any = None) -> GlooBroadcastGroup:
    """Drop-in for OpenRLHF's ``stateless_init_process_group`` (PyNccl, CUDA only): the same group over gloo."""
    return GlooBroadcastGroup(master_address, int(master_port), rank, world_size)


def install_gloo_weight_sync(cuda_available: bool | None = None) -> bool:
    """Without CUDA, make OpenRLHF's actor side of the weight sync build a gloo group instead of PyNccl's.

    The vLLM side is `riskpo_mm.openrlhf_ext.vllm_ext.RiskPOWorkerWrap`. Returns whether it is active.
    """
    import torch

    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return False
    for name in ("openrlhf.utils.distributed_util", "openrlhf.trainer.ray.ppo_actor"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "stateless_init_process_group"):
            module.stateless_init_process_group = gloo_stateless_init_process_group
    return True


def install(*, cuda_available: bool | None = None) -> dict[str, bool]:
    """Make OpenRLHF's Actor, PolicyLoss and DeepspeedStrategy import and run here. Idempotent.

    Returns which stand-ins are active: ``{"flash_attn": bool, "cuda_fallbacks": bool}``.
    """
    install_torchvision_hook()
    return {
        "flash_attn": install_flash_attn_standin(),
        "cuda_fallbacks": install_cuda_fallbacks(cuda_available),
    }


def is_standin(module_or_fn: Any) -> bool:
    """True for a module or function that this file put in place."""
    return bool(getattr(module_or_fn, STANDIN_MARKER, False))


if __name__ == "__main__":
    if sys.argv[1:] != ["install-hook"]:
        sys.exit("usage: python -m riskpo_mm.openrlhf_ext.compat install-hook")
    print(f"wrote {write_pth_hook()}")
