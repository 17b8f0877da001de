"""Run model-written code against tests, isolated, with hard limits.

Every execution (``run_tests``) starts a small launcher (``_sandbox_child.py``,
run as ``python -I -S``: no site-packages, no environment-driven imports) in its
own session / process group, with a minimal environment (PATH, LANG, HOME=the
work dir; nothing inherited from the trainer). The launcher then:

* enters new **mount, network, pid and IPC namespaces** (as root directly; as an
  unprivileged user inside a new user namespace). The network namespace has only
  a downed loopback: no socket can reach anything, not even localhost.
* remounts every file system read-only in its private mount namespace, hides the
  trainer's private directories (``/root``, ``/home``, ``$HOME``) behind empty
  read-only tmpfs (re-exposing only the Python installation), and mounts a fresh
  size-capped tmpfs on the work directory: the only writable place. The
  directory is removed afterwards (the tmpfs vanishes with the namespace).
* forks the harness as pid 1 of the new pid namespace with its own ``/proc``
  (no other process is visible), rlimits on CPU seconds, address space, file
  size, open files, processes, core dumps, and ``no_new_privs``; as root it
  also switches to a fresh unprivileged uid per run (root ignores
  ``RLIMIT_NPROC``; the per-run uid makes the process cap apply and isolates
  concurrent runs from each other).
* kills the harness at the wall-clock deadline; the kernel then kills every
  process of the pid namespace, including children that ``setsid()`` or
  ignore SIGTERM. stdout/stderr of the code go to files in the capped tmpfs
  (file-size rlimit), so a flood costs nothing; only a stderr tail comes back.

Where namespaces are unavailable (no root, user namespaces disabled), the
fallback is ``isolation="none"``: rlimits, own process group killed as a whole
(``killpg``), minimal environment, fresh temporary directory, and a uid switch
when root. That fallback has no network or file-system isolation; ``ExecResult.
isolation`` and :func:`isolation_in_effect` say which level ran, and
``isolation_required=True`` refuses to run without namespaces.

Out of scope: code that deliberately introspects the harness to forge results
(it runs in the same process as the tests, like every assert-based grader).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

_LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_child.py")
STATUSES = ("ok", "wrong", "error", "timeout", "memory", "killed")
_UID_BASE = 1_200_000
_uid_counter = itertools.count()
_uid_lock = threading.Lock()


@dataclass
class ExecResult:
    """Outcome of one sandboxed run: tests passed of total and why it ended."""

    passed: int
    total: int
    status: str  # one of STATUSES
    stderr_tail: str = ""
    detail: str = ""
    isolation: str = ""
    wall_s: float = 0.0

    @property
    def all_passed(self) -> bool:
        return self.status == "ok" and self.total > 0 and self.passed == self.total


@dataclass
class SandboxLimits:
    """Per-run limits. ``timeout_s`` is wall clock for the whole test set."""

    timeout_s: float = 5.0
    memory_mb: int = 512
    disk_mb: int = 32
    fsize_mb: int = 8
    nofile: int = 64
    nproc: int = 32
    stderr_tail: int = 2000
    isolation: str = "auto"  # auto | userns | none
    isolation_required: bool = False
    hide: tuple[str, ...] = field(default_factory=lambda: _default_hidden())

    def __post_init__(self) -> None:
        if self.isolation not in ("auto", "userns", "none"):
            raise ValueError(f"SandboxLimits.isolation: expected auto|userns|none, got {self.isolation!r}")
        if self.timeout_s <= 0 or self.memory_mb <= 0:
            raise ValueError("SandboxLimits: timeout_s and memory_mb must be positive")


def _default_hidden() -> tuple[str, ...]:
    home = os.path.expanduser("~")
    dirs = {"/root", "/home"}
    if home not in ("/", "") and not tempfile.gettempdir().startswith(home.rstrip("/") + "/"):
        dirs.add(home)
    return tuple(sorted(dirs))


def _next_uid() -> int:
    with _uid_lock:
        return _UID_BASE + (os.getpid() % 4096) * 256 + next(_uid_counter) % 256


def normalise_tests(tests: Any) -> list[str] | dict:
    """Check a tests value: a list of assert statements or {"inputs", "outputs", "fn_name"?}."""
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except ValueError:
            tests = [ln for ln in tests.splitlines() if ln.strip()]
    if isinstance(tests, (list, tuple)):
        if not all(isinstance(t, str) for t in tests):
            raise ValueError("tests: a list must hold assert statements as strings")
        return list(tests)
    if isinstance(tests, dict):
        if "inputs" not in tests or "outputs" not in tests:
            raise ValueError(f"tests: a dict needs 'inputs' and 'outputs' (got keys {sorted(tests)})")
        if len(tests["inputs"]) != len(tests["outputs"]):
            raise ValueError("tests: 'inputs' and 'outputs' differ in length")
        return {"inputs": list(tests["inputs"]), "outputs": list(tests["outputs"]),
                "fn_name": tests.get("fn_name") or None}
    raise ValueError(f"tests: expected a list of asserts or an inputs/outputs dict, got {type(tests).__name__}")


def run_tests(code: str, tests: Any, timeout_s: float | None = None, memory_mb: int | None = None,
              limits: SandboxLimits | None = None, deadline: float | None = None) -> ExecResult:
    """Run ``code`` then ``tests`` in a fresh sandbox; never raises for bad code.

    ``timeout_s``/``memory_mb`` override ``limits`` (default ``SandboxLimits()``:
    5 s, 512 MB). ``deadline`` (a ``time.monotonic()`` value) caps the run
    further; a batch limit passes it. Raises ``ValueError`` only for malformed
    ``tests``.
    """
    lim = limits or SandboxLimits()
    if timeout_s is not None or memory_mb is not None:
        lim = SandboxLimits(**{**lim.__dict__, "timeout_s": timeout_s or lim.timeout_s,
                               "memory_mb": memory_mb or lim.memory_mb})
    tests = normalise_tests(tests)
    total = len(tests) if isinstance(tests, list) else len(tests["inputs"])
    budget = lim.timeout_s
    if deadline is not None:
        budget = min(budget, deadline - time.monotonic())
        if budget <= 0.05:
            return ExecResult(0, total, "timeout", detail="batch deadline reached before start")
    t0 = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="riskpo-sbx-")
    job = {"code": code, "tests": tests, "timeout_s": budget, "memory_mb": lim.memory_mb,
           "disk_mb": lim.disk_mb, "fsize_mb": lim.fsize_mb, "nofile": lim.nofile, "nproc": lim.nproc,
           "stderr_tail": lim.stderr_tail, "isolation": lim.isolation,
           "isolation_required": lim.isolation_required, "uid": _next_uid(), "workdir": workdir,
           "hide": [h for h in lim.hide if not workdir.startswith(h.rstrip("/") + "/")],
           "expose": _python_paths()}
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir,
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", _LAUNCHER], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir, env=env,
                                start_new_session=True, close_fds=True)
        try:
            out, err = proc.communicate(json.dumps(job).encode(), timeout=budget + 3.0)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid)
            out, err = proc.communicate()
            return ExecResult(0, total, "timeout", detail="launcher missed its deadline; group killed",
                              wall_s=time.perf_counter() - t0)
        _killpg(proc.pid)
        try:
            res = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
        except (ValueError, IndexError):
            return ExecResult(0, total, "error", stderr_tail=err[-lim.stderr_tail:].decode("utf-8", "replace"),
                              detail=f"sandbox launcher failed (exit {proc.returncode})",
                              wall_s=time.perf_counter() - t0)
        return ExecResult(int(res["passed"]), int(res["total"]), res["status"], res["stderr_tail"],
                          res["detail"], res["isolation"], time.perf_counter() - t0)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, 9)
    except (ProcessLookupError, PermissionError):
        return


def _python_paths() -> list[str]:
    """Directories the sandboxed interpreter must still read (standard library)."""
    paths = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix),
             os.path.realpath(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))}
    return sorted(paths)


@dataclass
class CodeJob:
    """One program and its tests, for :func:`run_many`."""

    code: str
    tests: Any


class SandboxPool:
    """Bounded pool: at most ``workers`` sandboxes run at once.

    ``run_many`` grades a batch with a per-sample limit (``limits.timeout_s``)
    and a per-batch wall-clock limit (``batch_timeout_s``): runs not finished
    by then come back as ``timeout``; runs never started are not started.
    """

    def __init__(self, workers: int | None = None, limits: SandboxLimits | None = None) -> None:
        self.workers = workers or max(1, min(8, os.cpu_count() or 1))
        self.limits = limits or SandboxLimits()
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sandbox")

    def run_many(self, jobs: Sequence[CodeJob | tuple[str, Any]], batch_timeout_s: float | None = None
                 ) -> list[ExecResult]:
        deadline = time.monotonic() + batch_timeout_s if batch_timeout_s else None
        futures = [self._executor.submit(self._run_one, job, deadline) for job in jobs]
        return [f.result() for f in futures]

    def _run_one(self, job: CodeJob | tuple[str, Any], deadline: float | None) -> ExecResult:
        code, tests = (job.code, job.tests) if isinstance(job, CodeJob) else job
        try:
            return run_tests(code, tests, limits=self.limits, deadline=deadline)
        except Exception as e:  # malformed tests etc.: a grading error, not a crash
            return ExecResult(0, 0, "error", detail=f"{type(e).__name__}: {e}")

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_many(jobs: Sequence[CodeJob | tuple[str, Any]], workers: int | None = None,
             limits: SandboxLimits | None = None, batch_timeout_s: float | None = None) -> list[ExecResult]:
    """Run a batch of (code, tests) concurrently on a temporary :class:`SandboxPool`."""
    with SandboxPool(workers, limits) as pool:
        return pool.run_many(jobs, batch_timeout_s)


def isolation_in_effect(limits: SandboxLimits | None = None) -> str:
    """Which isolation a run gets on this machine (runs one trivial program)."""
    return run_tests("x = 1", ["assert x == 1"], limits=limits).isolation
