"""Per-step metrics to TensorBoard, an append-only `metrics.jsonl` (each row with its unix `time`), and
W&B if asked; the run's wall time over resumed segments (`wall_time.json`)."""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

PROGRESS_ENV = "RISKPO_MM_PROGRESS_EVERY"  # set by `riskpo-mm train` when stderr is not a terminal
WALL_FILE = "wall_time.json"


class MetricsLogger:
    """Writes one JSON object per step; TensorBoard scalars under the same keys."""

    def __init__(self, run_dir: Path, tensorboard: bool = True, wandb_project: str | None = None, config: dict | None = None):
        self.path = run_dir / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tb = None
        self._wandb = None
        self._total = ((config or {}).get("train") or {}).get("steps")
        self._every = int(os.environ.get(PROGRESS_ENV, "0") or 0)
        self._last_t = time.time()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        if wandb_project:
            import wandb

            self._wandb = wandb.init(project=wandb_project, name=run_dir.name, config=config or {})

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines of steps after the checkpoint so the log has no duplicates."""
        if not self.path.is_file():
            return
        kept = [line for line in self.path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}
        now = time.time()
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, "time": round(now, 3), **clean}) + "\n")
        if self._every and (step % self._every == 0 or step == 1 or step == self._total):
            self._progress(step, clean, now)
        if self._tb is not None:
            for k, v in clean.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(clean, step=step)

    def _progress(self, step: int, m: dict[str, float], now: float) -> None:
        """One plain line instead of a progress bar (output that is not a terminal)."""
        shown = [f"{name} {m[key]:.3f}" for key, name in (("reward/mean", "reward"), ("accuracy/mean", "accuracy"),
                                                        ("entropy", "entropy")) if key in m]
        total = f"/{self._total}" if self._total else ""
        print(f"[riskpo-mm] step {step}{total}  {'  '.join(shown)}  {now - self._last_t:.1f} s since last line",
              flush=True)
        self._last_t = now

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class WallClock:
    """The run's wall time over resumed segments: `<run>/wall_time.json` holds each segment's seconds,
    the current one refreshed every `every_s` (so a killed segment still counts up to its last refresh)."""

    def __init__(self, run_dir: Path, resume: bool, every_s: float = 10.0) -> None:
        self.path = Path(run_dir) / WALL_FILE
        self.earlier: list[float] = []
        if resume and self.path.is_file():
            try:
                self.earlier = [float(x) for x in json.loads(self.path.read_text()).get("segments_s", [])]
            except (ValueError, OSError, AttributeError):
                self.earlier = []
        self.t0 = time.time()
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def elapsed(self) -> float:
        return time.time() - self.t0

    def total(self) -> float:
        return sum(self.earlier) + self.elapsed()

    def write(self) -> None:
        if not self.path.parent.is_dir():
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps({"segments_s": [*self.earlier, round(self.elapsed(), 3)],
                                   "total_s": round(self.total(), 3)}))
        os.replace(tmp, self.path)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.write()
            except OSError:
                pass

    def start(self) -> "WallClock":
        self.write()
        self._thread = threading.Thread(target=self._loop, name="riskpo-wall-clock", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            self.write()
        except OSError:
            pass


def earlier_wall_s(run_dir: Path) -> float:
    """Seconds of the run's earlier segments (all but the current, last one) from `wall_time.json`."""
    path = Path(run_dir) / WALL_FILE
    try:
        return sum(float(x) for x in json.loads(path.read_text()).get("segments_s", [])[:-1])
    except (OSError, ValueError, AttributeError):
        return 0.0
