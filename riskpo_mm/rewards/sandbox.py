"""Run model-written code against tests, isolated, with hard limits (threat model: docs/sandbox.md).

``run_tests`` starts a trusted launcher/judge (``_sandbox_child.py``, ``python -I -S``)
which starts the code under **bubblewrap** (``bwrap``): new user, mount, pid, net,
ipc, uts and cgroup namespaces, no capabilities, no nested user namespaces,
``no_new_privs``, a new session; a read-only root holding only the interpreter,
its standard library (site-packages hidden) and the shared libraries they load;
fresh size-capped tmpfs for the work dir (``/work``), ``/tmp`` and ``/dev/shm``;
its own ``/proc`` and a minimal ``/dev``; no host socket, file or process is
reachable. As root the sandbox runs under a fresh unprivileged uid per run and
the judge under another. Total memory and process count are bounded by a
per-run cgroup (v1 memory+pids, or delegated v2) where one can be created, else
by ``nproc`` x ``memory_mb`` (rlimits inside the sandbox's own user namespace).

Verdicts are decided in the judge, a process the code cannot reach: the code
only ever returns plain data (see ``_sandbox_child``), so always-equal objects,
replaced builtins, frame introspection and early exits earn nothing.

``isolation="none"`` (trusted code only) runs the same harness without bwrap:
rlimits, process group, uid switch as root, cgroup where available.
``ExecResult.isolation`` / ``not_covered`` say what ran and what it leaves open.
"""

from __future__ import annotations

import functools
import glob
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from ._sandbox_cgroup import RunCgroup

logger = logging.getLogger(__name__)

_LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_child.py")
STATUSES = ("ok", "wrong", "error", "timeout", "memory", "killed")
ISOLATIONS = ("auto", "bwrap", "none")
_UID_BASE = 1_200_000
GRACE_S = 2.0  # launcher start + teardown beyond the run's timeout
CGROUP_SLACK_MB = 48  # bwrap, the harness interpreter and tmpfs metadata above memory_mb
_uid_counter = itertools.count()
_uid_lock = threading.Lock()
_logged: set[str] = set()
NOT_COVERED_BWRAP = ("kernel attack surface (no seccomp filter: any syscall an unprivileged user may make); "
                     "CPU share and timing side channels (wall clock and RLIMIT_CPU only); "
                     "dataset test code runs in the judge outside the sandbox (trusted like gold answers)")
NOT_COVERED_NO_CGROUP = "total memory bounded only by nproc x memory_mb (no cgroup could be created)"
NOT_COVERED_NONE = ("no file-system, network or namespace isolation; with no cgroup, processes that leave "
                    "the process group can outlive the run: trusted code only")


@dataclass
class ExecResult:
    """Outcome of one sandboxed run: tests passed of total, why it ended, and what isolated it."""

    passed: int
    total: int
    status: str  # one of STATUSES
    stderr_tail: str = ""
    detail: str = ""
    isolation: str = ""  # what ran, e.g. "bwrap 0.8.0 (...); cgroup v1: memory ..."
    wall_s: float = 0.0
    not_covered: str = ""  # what that isolation does not cover

    @property
    def all_passed(self) -> bool:
        return self.status == "ok" and self.total > 0 and self.passed == self.total


@dataclass
class SandboxLimits:
    """Per-run limits. ``timeout_s`` is wall clock for the whole test set.

    ``isolation``: ``auto`` / ``bwrap`` (bubblewrap; refuses to run without it) or
    ``none`` (no namespaces, trusted code only). ``cgroup``: ``auto`` (create one
    per run where possible), ``off``, or a writable cgroup v2 directory to create
    the per-run groups under. ``python``: interpreter for the sandbox (default:
    the trainer's; as root, one an unprivileged uid can execute).
    """

    timeout_s: float = 5.0
    memory_mb: int = 512
    disk_mb: int = 32
    fsize_mb: int = 8
    nofile: int = 64
    nproc: int = 32
    stderr_tail: int = 2000
    isolation: str = "auto"
    cgroup: str = "auto"
    python: str | None = None

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"SandboxLimits.isolation: expected auto|bwrap|none, got {self.isolation!r}")
        if self.timeout_s <= 0 or self.memory_mb <= 0:
            raise ValueError("SandboxLimits: timeout_s and memory_mb must be positive")


class SandboxUnavailable(RuntimeError):
    """The requested isolation cannot run on this machine."""


def _next_uid() -> int:
    """A fresh even uid per run (sandbox = uid, judge = uid + 1)."""
    with _uid_lock:
        return _UID_BASE + ((os.getpid() % 4096) * 256 + next(_uid_counter) % 128 * 2)


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


# ----------------------------------------------------------------------------- what the sandbox sees

def _reachable_by_others(path: str) -> bool:
    """Whether a uid other than the owner can execute ``path`` (every directory o+x, file o+rx)."""
    path = os.path.realpath(path)
    parts = path.split("/")
    for i in range(2, len(parts)):
        try:
            if not os.stat("/".join(parts[:i])).st_mode & 0o001:
                return False
        except OSError:
            return False
    try:
        return os.stat(path).st_mode & 0o005 == 0o005
    except OSError:
        return False


@dataclass(frozen=True)
class _Interpreter:
    python: str
    dirs: tuple[str, ...]  # standard library directories, bound read-only
    hidden: tuple[str, ...]  # site-packages inside them, covered by an empty tmpfs
    files: tuple[str, ...]  # the binary, its loader and the shared libraries


@functools.lru_cache(maxsize=8)
def _interpreter(python: str | None, for_other_uid: bool) -> _Interpreter:
    """The interpreter the sandbox runs and every file it needs (asked of it once, then ldd)."""
    if python is None:
        python = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
        if for_other_uid and not _reachable_by_others(python):
            ver = f"{sys.version_info.major}.{sys.version_info.minor}"
            alts = [p for p in (f"/usr/bin/python{ver}", f"/usr/local/bin/python{ver}")
                    if os.path.exists(p) and _reachable_by_others(p)]
            if not alts:
                raise SandboxUnavailable(f"{python} is not executable by an unprivileged uid and no "
                                         f"python{ver} elsewhere is; set SandboxLimits.python")
            python = alts[0]
    python = os.path.realpath(python)
    probe = subprocess.run([python, "-I", "-S", "-c", "import sys, json; print(json.dumps(sys.path))"],
                           capture_output=True, text=True, timeout=30, check=True)
    dirs = tuple(sorted({os.path.realpath(p) for p in json.loads(probe.stdout) if os.path.isdir(p)}))
    hidden = tuple(sorted(h for d in dirs for h in glob.glob(os.path.join(d, "*-packages"))))
    objs = [python] + [f for d in dirs for f in glob.glob(os.path.join(d, "lib-dynload", "*.so"))
                       if "_tkinter" not in f]
    files = {python}
    ldd = shutil.which("ldd")
    if ldd:
        out = subprocess.run([ldd, *objs], capture_output=True, text=True, timeout=60).stdout
        for tok in out.split():
            if tok.startswith("/") and not tok.endswith(":") and os.path.exists(tok):
                files.add(tok)
    return _Interpreter(python, dirs, hidden, tuple(sorted(files)))


@functools.lru_cache(maxsize=1)
def _bwrap() -> tuple[str, str]:
    """(path, version) of bubblewrap, or SandboxUnavailable."""
    path = shutil.which("bwrap") or ("/usr/bin/bwrap" if os.path.exists("/usr/bin/bwrap") else None)
    if path is None:
        raise SandboxUnavailable("bubblewrap (bwrap) not found: apt-get install bubblewrap, "
                                 "or SandboxLimits(isolation='none') for trusted code")
    ver = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout.split()
    return path, (ver[-1] if ver else "?")


@functools.lru_cache(maxsize=1)
def _harness_source() -> str:
    with open(_LAUNCHER) as f:
        return f.read()


_SANDBOX_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/work",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}


def _bwrap_argv(interp: _Interpreter, lim: SandboxLimits) -> list[str]:
    """The bubblewrap command: namespaces, a read-only root with the interpreter only, private tmpfs."""
    bwrap, _ = _bwrap()
    argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--cap-drop", "ALL", "--hostname", "sandbox"]
    for f in interp.files:
        argv += ["--ro-bind", f, f]
    for d in interp.dirs:
        argv += ["--ro-bind", d, d]
    for h in interp.hidden:
        argv += ["--size", "4096", "--tmpfs", h, "--remount-ro", h]
    disk = str(lim.disk_mb << 20)
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(8 << 20), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
             "--size", disk, "--perms", "0700", "--tmpfs", "/tmp",
             "--size", disk, "--perms", "0700", "--tmpfs", "/work", "--remount-ro", "/", "--chdir", "/work",
             "--clearenv"]
    for k, v in _SANDBOX_ENV.items():
        argv += ["--setenv", k, v]
    return argv + ["--", interp.python, "-I", "-S", "-c", _harness_source(), "harness"]


# ----------------------------------------------------------------------------- running one program

def run_tests(code: str, tests: Any, timeout_s: float | None = None, memory_mb: int | None = None,
              limits: SandboxLimits | None = None, deadline: float | None = None) -> ExecResult:
    """Run ``code`` against ``tests`` in a fresh sandbox; never raises for bad code or a broken sandbox.

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
    try:
        res = _run(code, tests, lim, budget, total)
    except SandboxUnavailable as e:
        res = ExecResult(0, total, "error", detail=f"sandbox unavailable: {e}")
    except Exception as e:  # never into the trainer
        logger.exception("sandbox failed")
        res = ExecResult(0, total, "error", detail=f"sandbox failure: {type(e).__name__}: {e}")
    res.wall_s = time.perf_counter() - t0
    return res


def _run(code: str, tests: list[str] | dict, lim: SandboxLimits, budget: float, total: int) -> ExecResult:
    root = os.geteuid() == 0
    uid = _next_uid() if root else None
    interp = _interpreter(lim.python, root)
    cg = None
    if lim.cgroup != "off":
        cg = RunCgroup.create((lim.memory_mb + CGROUP_SLACK_MB) << 20, lim.nproc + 8,
                              None if lim.cgroup == "auto" else lim.cgroup)
    workdir = None
    if lim.isolation == "none":
        workdir = tempfile.mkdtemp(prefix="riskpo-sbx-")
        if uid is not None:
            os.chown(workdir, uid, uid)
        argv = [interp.python, "-I", "-S", "-c", _harness_source(), "harness"]
        env = {**_SANDBOX_ENV, "HOME": workdir}
        iso, uncovered = f"none (rlimits + process group{', uid ' + str(uid) if root else ''})", NOT_COVERED_NONE
    else:
        argv, env = _bwrap_argv(interp, lim), {}
        iso = (f"bwrap {_bwrap()[1]} (user, mount, pid, net, ipc, uts, cgroup namespaces; no capabilities; "
               f"read-only {interp.python} + stdlib only; {'uid ' + str(uid) if root else 'trainer uid'})")
        uncovered = NOT_COVERED_BWRAP
    iso += "; " + (cg.description if cg else f"no cgroup: memory <= nproc x memory_mb = "
                                               f"{lim.nproc * lim.memory_mb} MB")
    if cg is None:
        uncovered += "; " + NOT_COVERED_NO_CGROUP
    if iso not in _logged:
        _logged.add(iso)
        logger.info("sandbox isolation: %s; not covered: %s", iso, uncovered)
    job = {"code": code, "tests": tests, "timeout_s": budget, "stderr_tail": lim.stderr_tail,
           "argv": argv, "env": env, "cwd": workdir, "cgroup_procs": cg.procs if cg else [],
           "sandbox_uid": uid, "judge_uid": uid + 1 if uid is not None else None,
           "harness_limits": {"memory_mb": lim.memory_mb, "cpu_s": int(budget) + 2, "fsize_mb": lim.fsize_mb,
                              "nofile": lim.nofile, "nproc": lim.nproc}}
    try:
        proc = subprocess.Popen([interp.python, "-I", "-S", _LAUNCHER], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, start_new_session=True)
        try:
            out, err = proc.communicate(json.dumps(job).encode(), timeout=budget + GRACE_S)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid)
            proc.communicate()
            return ExecResult(0, total, "timeout", detail="launcher missed its deadline; killed",
                              isolation=iso, not_covered=uncovered)
        _killpg(proc.pid)
    finally:
        oom = cg.oom_kills() if cg else 0
        if cg:
            cg.destroy()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    try:
        res = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return ExecResult(0, total, "error", stderr_tail=err[-lim.stderr_tail:].decode("utf-8", "replace"),
                          detail=f"sandbox launcher failed (exit {proc.returncode})",
                          isolation=iso, not_covered=uncovered)
    status, detail = res["status"], res["detail"]
    if oom and status in ("error", "killed", "wrong"):
        status, detail = "memory", f"sandbox over its memory limit ({oom} process(es) OOM-killed)"
    if res.get("sandbox_exit") == 127 and status == "error" and not res["passed"]:
        detail = f"sandbox failed to start: {res['stderr_tail'][-300:]}"
    return ExecResult(int(res["passed"]), int(res["total"]), status, res["stderr_tail"], detail, iso,
                      not_covered=uncovered)


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, 9)
    except (ProcessLookupError, PermissionError):
        return


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
    """Which isolation a run gets on this machine (runs one trivial program; "" where none can run)."""
    return run_tests("x = 1", ["assert x == 1"], limits=limits).isolation
