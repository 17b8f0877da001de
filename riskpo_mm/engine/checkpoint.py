"""Atomic run checkpoints: write into a temporary folder, then rename.

A checkpoint folder holds the HF model + processor (`model/`), the DeepSpeed
engine state (weights, optimizer, scheduler) under `ds/`, and
`trainer_state.pt` with the quantile tracker, the pairing and sampling RNGs,
the dataloader position, the step counter and the resolved config. `latest`
names the newest complete checkpoint; a run killed mid-write leaves the
previous one intact.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

LATEST = "latest"
STATE_FILE = "trainer_state.pt"


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _noop() -> None:
    return None


def save_checkpoint(
    root: Path,
    step: int,
    trainer_state: dict[str, Any],
    write_payload: Callable[[Path], None],
    keep_last: int = 2,
    is_main: bool = True,
    barrier: Callable[[], None] = _noop,
) -> Path:
    """Write `root/step_<step, 6 digits>` atomically and point `root/latest` at it.

    Called on every rank: `write_payload(tmp_dir)` may be collective (DeepSpeed
    checkpoints are); only the main rank creates, renames and prunes folders.
    """
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp_step_{step:06d}"
    if is_main:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    barrier()
    write_payload(tmp)
    barrier()
    if is_main:
        torch.save(trainer_state, tmp / STATE_FILE)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _write_text_atomic(root / LATEST, final.name)
        for old in list_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders are never listed)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if (p / STATE_FILE).is_file())


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint named by `latest`, else the newest complete one, else None."""
    pointer = root / LATEST
    if pointer.is_file():
        candidate = root / pointer.read_text().strip()
        if (candidate / STATE_FILE).is_file():
            return candidate
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_trainer_state(ckpt: Path) -> dict[str, Any]:
    return torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=False)
