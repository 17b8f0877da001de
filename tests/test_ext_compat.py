"""CPU compatibility layer: stand-ins only where the real package / CUDA is missing, and correct."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from riskpo_mm.openrlhf_ext import compat


@contextmanager
def _without_modules(prefix: str):
    """Temporarily forget every ``prefix``/``prefix.*`` module, restoring them afterwards."""
    saved = {k: v for k, v in sys.modules.items() if k == prefix or k.startswith(prefix + ".")}
    for k in saved:
        del sys.modules[k]
    try:
        yield
    finally:
        for k in [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]:
            del sys.modules[k]
        sys.modules.update(saved)


def test_flash_attn_standin_activates_only_when_the_real_package_is_missing():
    assert importlib.util.find_spec("flash_attn") is None or compat.is_standin(sys.modules.get("flash_attn"))
    with _without_modules("flash_attn"):
        assert compat.install_flash_attn_standin() is True
        assert compat.install_flash_attn_standin() is True  # idempotent
        import flash_attn.bert_padding as bp

        assert compat.is_standin(sys.modules["flash_attn"])
        assert importlib.util.find_spec("flash_attn") is not None  # proper ModuleSpec: no ValueError
        assert bp.unpad_input is compat.unpad_input
        with pytest.raises(ImportError):  # OpenRLHF's optional Triton kernel must still fall back
            importlib.import_module("flash_attn.ops.triton.cross_entropy")


def test_flash_attn_standin_never_masks_a_real_install():
    with tempfile.TemporaryDirectory() as tmp, _without_modules("flash_attn"):
        pkg = Path(tmp) / "flash_attn"
        pkg.mkdir()
        (pkg / "__init__.py").write_text(textwrap.dedent("REAL = True\n"))
        sys.path.insert(0, tmp)
        try:
            importlib.invalidate_caches()
            assert compat.install_flash_attn_standin() is False
            import flash_attn

            assert flash_attn.REAL and not compat.is_standin(flash_attn)
        finally:
            sys.path.remove(tmp)


def test_unpad_then_pad_round_trips_and_matches_masked_indexing():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 4, generator=g)  # [B, S, D]
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 0]])
    unpadded, indices, cu_seqlens, max_seqlen, used = compat.unpad_input(x, mask)
    assert torch.equal(unpadded, x[mask.bool()])  # [nnz, D]
    assert cu_seqlens.tolist() == [0, 3, 8, 10] and cu_seqlens.dtype == torch.int32
    assert max_seqlen == 5 and used.tolist() == [3, 5, 2]
    assert torch.equal(compat.pad_input(unpadded, indices, 3, 5), x * mask.unsqueeze(-1))
    assert torch.equal(compat.index_first_axis(x.reshape(15, 4), indices), unpadded)


def test_pad_input_passes_gradients_to_the_unpadded_values():
    values = torch.randn(4, 2, requires_grad=True)
    out = compat.pad_input(values, torch.tensor([0, 2, 3, 5]), 2, 3)
    out.sum().backward()
    assert torch.equal(values.grad, torch.ones(4, 2))


def test_openrlhf_models_import_and_its_unpad_path_round_trips_after_install():
    compat.install()
    from openrlhf.models import Actor, PolicyLoss  # noqa: F401
    from openrlhf.models.ring_attn_utils import gather_and_pad_tensor, unpad_and_slice_tensor

    seqs = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = (seqs != 0).long()
    flat, position_ids, rolled, pad_len, indices = unpad_and_slice_tensor(seqs, mask, None)
    assert flat.tolist() == [[5, 6, 7, 8, 9]] and position_ids.tolist() == [[0, 1, 2, 0, 1]]
    assert torch.equal(gather_and_pad_tensor(flat.float(), None, pad_len, indices, 2, 4), seqs.float())


def test_cuda_fallbacks_stay_off_when_cuda_is_available():
    original = torch.cuda.synchronize
    assert compat.install_cuda_fallbacks(cuda_available=True) is False
    assert torch.cuda.synchronize is original


@pytest.mark.skipif(torch.cuda.is_available(), reason="fallbacks exist only without CUDA")
def test_cuda_fallbacks_make_openrlhf_cuda_calls_cpu_equivalents():
    assert compat.install()["cuda_fallbacks"] is True
    assert compat.install()["cuda_fallbacks"] is True  # idempotent, wrapped once
    assert not compat.is_standin(torch.cuda.synchronize.__wrapped__)
    torch.cuda.set_device(0)
    torch.cuda.synchronize()
    assert torch.zeros(1).to(torch.cuda.current_device()).device.type == "cpu"
    from torch.distributed.device_mesh import init_device_mesh

    assert compat.is_standin(init_device_mesh)


_TORCHVISION_PROBE = r"""
import sys
sys.path.insert(0, {root!r})
import riskpo_mm.openrlhf_ext.compat as c
{prepare}
c.install_torchvision_hook()
import torchvision.transforms.v2
print("DEFINED", c.torchvision_standin_ops())
"""


def _probe_torchvision(prepare: str = "") -> str:
    """Import torchvision in a fresh interpreter without site hooks (-S), with our hook only."""
    import site
    import subprocess

    code = _TORCHVISION_PROBE.format(root=str(Path(__file__).resolve().parents[1]), prepare=prepare)
    paths = [p for p in site.getsitepackages() if "site-packages" in p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_torchvision_hook_defines_the_missing_op_schemas_only_when_the_compiled_ops_are_absent():
    import torchvision

    if torchvision.extension._has_ops():
        pytest.skip("torchvision's compiled ops load here; the other test covers this machine kind")
    assert "DEFINED ['nms', 'qnms']" in _probe_torchvision()


def test_torchvision_hook_defines_nothing_when_the_ops_exist():
    prepare = ("import torch\nlib = torch.library.Library('torchvision', 'FRAGMENT')\n"
               "lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')\n"
               "lib.define('qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')")
    assert "DEFINED []" in _probe_torchvision(prepare)  # as with a working compiled library


def test_torchvision_pth_hook_is_written_into_the_environment(tmp_path):
    path = compat.write_pth_hook(str(tmp_path))
    assert Path(path).read_text().startswith("import riskpo_mm.openrlhf_ext.compat")
