"""A small persistent pool of grading processes that are killed and replaced on timeout.

Why: sympy work (math-verify parse + verify, ``evalf``) can run for minutes
or forever on hostile answers, in C code no signal interrupts, and
``signal.alarm`` timeouts only exist in a process's main thread (OpenRLHF
calls the reward function via ``asyncio.to_thread``). A separate process can
always be killed. Each call is bounded by its deadline: waiting for a free
worker, the worker's own start-up, and the work itself all count against it.

Workers are plain ``python -m riskpo_mm.rewards._grading_worker`` children
(no multiprocessing start-method or ``__main__`` re-import issues), started
lazily on first use, each with an address-space limit
(``RISKPO_GRADER_MEMORY_MB``, default 4096). A worker that overruns is
SIGKILLed and a fresh one started at once (its start-up overlaps other work).
"""

from __future__ import annotations

import atexit
import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from typing import Any

import riskpo_mm

_PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(riskpo_mm.__file__)))


class GradeTimeout(Exception):
    """A grade that did not finish within its time: scored 0, counted as a timeout."""


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = _PKG_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen([sys.executable, "-m", "riskpo_mm.rewards._grading_worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=_PKG_ROOT,
                                     start_new_session=True)
        self.ready = False
        self._buf = b""

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise GradeTimeout
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError("grading worker exited")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def recv(self, deadline: float) -> Any:
        n = struct.unpack(">I", self._read(4, deadline))[0]
        return pickle.loads(self._read(n, deadline))

    def wait_ready(self, deadline: float) -> None:
        if not self.ready:
            self.recv(deadline)
            self.ready = True

    def send(self, obj: Any) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.write(struct.pack(">I", len(data)) + data)
        self.proc.stdin.flush()

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class GradingPool:
    """``workers`` grading processes; :meth:`call` runs one op on a free one within a deadline.

    ``task_timeout_s`` is the most one op may run on a worker before the
    worker is killed (its soft timer fires ``soft_margin_s`` earlier, which
    usually spares the process). Thread-safe.
    """

    def __init__(self, workers: int = 2, task_timeout_s: float = 2.5, soft_margin_s: float = 0.5) -> None:
        self.workers, self.task_timeout_s, self.soft_margin_s = max(1, int(workers)), task_timeout_s, soft_margin_s
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._live: set[_Worker] = set()
        self._started = False
        self._owner = os.getpid()
        self.kills = 0

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's workers (their pipes are the parent's), start afresh."""
        self._lock = threading.Lock()
        self._idle = queue.Queue()
        self._live = set()
        self._started = False
        self._owner = os.getpid()

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            for _ in range(self.workers):
                self._add()
            self._started = True
            atexit.register(self.close)

    def _add(self) -> None:
        w = _Worker()
        self._live.add(w)
        self._idle.put(w)

    def _replace(self, w: _Worker) -> None:
        w.kill()
        with self._lock:
            self._live.discard(w)
            self.kills += 1
            if self._started:
                self._add()

    def call(self, op: str, args: tuple, deadline: float) -> Any:
        """Result of ``op(*args)`` in a worker; ``GradeTimeout`` past ``deadline`` (time.monotonic)."""
        if self._owner != os.getpid():
            self._after_fork()
        if not self._started:
            self._start()
        try:
            w = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise GradeTimeout("no grading worker free before the deadline") from None
        try:
            w.wait_ready(deadline)
        except GradeTimeout:
            self._idle.put(w)  # still starting: fine, just not in time for this call
            raise GradeTimeout("grading worker still starting at the deadline") from None
        except (EOFError, OSError, pickle.UnpicklingError, struct.error):
            self._replace(w)
            raise GradeTimeout("grading worker failed to start") from None
        end = min(deadline, time.monotonic() + self.task_timeout_s)
        try:
            w.send((op, args, max(0.05, end - time.monotonic() - self.soft_margin_s)))
            status, value = w.recv(end)
        except GradeTimeout:
            self._replace(w)
            raise GradeTimeout("grading worker killed at the time limit") from None
        except (EOFError, OSError, pickle.UnpicklingError, struct.error) as e:
            self._replace(w)
            raise GradeTimeout(f"grading worker died ({type(e).__name__})") from None
        self._idle.put(w)
        if status == "ok":
            return value
        if status == "timeout":
            raise GradeTimeout("grading stopped by the worker's timer")
        raise RuntimeError(f"grading worker: {value}")

    def close(self) -> None:
        """Kill every worker (they are restarted lazily on the next call)."""
        if self._owner != os.getpid():
            return
        with self._lock:
            live, self._live, self._started = list(self._live), set(), False
            self._idle = queue.Queue()
        for w in live:
            w.kill()

    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._live]
