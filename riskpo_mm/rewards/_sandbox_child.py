"""Sandbox launcher: isolates itself, then runs untrusted code against tests.

Executed as a script (``python -I -S _sandbox_child.py``) by
``riskpo_mm.rewards.sandbox``; standard library only, so start-up stays cheap.
The job arrives as JSON on stdin; one JSON result line goes to stdout.

Process layout::

    trainer ── launcher (this file, trusted, own session)
                 └── harness = pid 1 of a new pid namespace (untrusted code runs here,
                     as an unprivileged uid, with rlimits); per stdin case it forks once.

The launcher enforces the wall clock: on expiry it SIGKILLs the harness; the kernel
then kills every process of the pid namespace. Results come back over a pipe,
each line tagged with a random nonce the code under test never sees in the clear.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import resource
import select
import signal
import sys
import time
import traceback

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWIPC = 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
EXIT_MEMORY = 86  # a stdin case died of MemoryError

_COMMON_MODULES = ("bisect", "collections", "copy", "datetime", "decimal", "fractions", "functools", "heapq",
                   "itertools", "math", "operator", "random", "re", "statistics", "string", "typing")

_libc = ctypes.CDLL(None, use_errno=True)
_MOUNT_OPT_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
                    "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _prctl(option: int, arg: int) -> None:
    _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0)


def _mounts() -> list[tuple[str, int]]:
    """(mount point, locked per-mount flags) of this mount namespace, parents first."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            point = parts[4].replace("\\040", " ")
            flags = 0
            for opt in parts[5].split(","):
                flags |= _MOUNT_OPT_FLAGS.get(opt, 0)
            out.append((point, flags))
    return out


def _isolate(job: dict) -> str:
    """Enter new namespaces and lock the file system down; returns what is in effect.

    Sets ``job["drop_uid"]``: whether the harness switches to the sandbox uid.
    """
    mode = job["isolation"]
    is_root = os.geteuid() == 0
    job["drop_uid"] = is_root
    if mode == "none":
        return "none (rlimits + process group only)"
    ns = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC
    if mode == "userns" or not is_root:
        uid, gid = os.geteuid(), os.getegid()
        _unshare(CLONE_NEWUSER | ns)
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
        job["drop_uid"] = False
        kind = "user+mount+net+pid+ipc namespaces (unprivileged)"
    else:
        _unshare(ns)
        kind = f"mount+net+pid+ipc namespaces, uid {job['uid']}"
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Read-only everywhere (devices and procfs excepted) ...
    for point, locked in _mounts():
        if point == "/proc" or point.startswith("/proc/") or point in ("/dev", "/dev/pts"):
            continue
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | locked)
        except OSError:
            kind += f"; {point} stays writable"
    # ... private directories of the trainer hidden, the interpreter re-exposed ...
    expose_fds = [(p, os.open(p, os.O_PATH)) for p in job["expose"] if os.path.isdir(p)]
    for hide in job["hide"]:
        if not os.path.isdir(hide):
            continue
        _mount("tmpfs", hide, "tmpfs", MS_NOSUID | MS_NODEV, "size=16k,mode=0755")
        for path, fd in expose_fds:
            if path.startswith(hide.rstrip("/") + "/"):
                os.makedirs(path, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
                _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        _mount(None, hide, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=16k,mode=0755")
    for _, fd in expose_fds:
        os.close(fd)
    # ... and the work directory a fresh, size-capped tmpfs: the only writable place.
    owner = f",uid={job['uid']},gid={job['uid']}" if job["drop_uid"] else ""
    _mount("tmpfs", job["workdir"], "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={job['disk_mb']}m,nr_inodes=4096,mode=0700{owner}")
    return kind


def _limit_and_drop(job: dict, namespaced: bool) -> None:
    """In the harness (pid 1): own procfs, rlimits, unprivileged uid, no new privileges."""
    if namespaced:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    cpu = int(math.ceil(job["timeout_s"])) + 1
    mem = job["memory_mb"] * 1024 * 1024
    fsize = job["fsize_mb"] * 1024 * 1024
    for lim, val in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, mem), (resource.RLIMIT_FSIZE, fsize),
                     (resource.RLIMIT_NOFILE, job["nofile"]), (resource.RLIMIT_NPROC, job["nproc"]),
                     (resource.RLIMIT_CORE, 0), (resource.RLIMIT_MEMLOCK, 0), (resource.RLIMIT_MSGQUEUE, 0)):
        resource.setrlimit(lim, (val, val))
    if job["drop_uid"]:
        if not namespaced:  # the interpreter may live where the sandbox uid cannot read
            for name in _COMMON_MODULES:
                try:
                    __import__(name)
                except ImportError:
                    continue
        os.setgroups([])
        os.setgid(job["uid"])
        os.setuid(job["uid"])
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.chdir(job["workdir"])


# ----------------------------------------------------------------------------- harness

def _normalise_text(s: str) -> list[str]:
    lines = [ln.rstrip() for ln in s.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _outputs_match(got: str, want: str) -> bool:
    a, b = _normalise_text(got), _normalise_text(want)
    if a == b:
        return True
    ta, tb = " ".join(a).split(), " ".join(b).split()
    if len(ta) != len(tb):
        return False
    for x, y in zip(ta, tb):
        if x == y:
            continue
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        if not math.isclose(fx, fy, rel_tol=1e-6, abs_tol=1e-6):
            return False
    return True


def _values_match(got, want) -> bool:
    if isinstance(got, tuple):
        got = list(got)
    if isinstance(want, tuple):
        want = list(want)
    if isinstance(got, float) or isinstance(want, float):
        try:
            return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-6)
        except (TypeError, ValueError):
            return False
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(_values_match(x, y) for x, y in zip(got, want))
    return got == want


def _maybe_json(v):
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _call_args(v) -> list:
    if isinstance(v, str):
        lines = [ln for ln in v.split("\n") if ln.strip()]
        try:
            return [json.loads(ln) for ln in lines]
        except ValueError:
            return [v]
    if isinstance(v, (list, tuple)):
        return list(v)
    return [v]


def _run_harness(job: dict, wfd: int, nonce: str) -> None:
    def report(line: str) -> None:
        os.write(wfd, f"{nonce} {line}\n".encode())

    code, tests = job["code"], job["tests"]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    out_fd = os.open(".stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err_fd = os.open(".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null_fd = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    for fd in (null_fd, out_fd, err_fd):
        os.close(fd)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", closefd=False, buffering=1)
    sys.stderr = open(2, "w", closefd=False, buffering=1)
    def fail_trace() -> None:
        try:
            traceback.print_exc(limit=3)
        except BaseException:
            return

    if isinstance(tests, dict) and not tests.get("fn_name"):
        _run_stdio_cases(code, tests, report)
        return
    try:
        compiled = compile(code, "solution.py", "exec")
    except BaseException:
        fail_trace()
        report("done error syntax")
        return
    g: dict = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        exec(compiled, g)
    except MemoryError:
        report("done memory definition")
        return
    except BaseException as e:
        fail_trace()
        report(f"done error {type(e).__name__}")
        return
    if isinstance(tests, dict):
        _run_call_cases(g, tests, report, fail_trace)
        return
    for i, test in enumerate(tests):
        try:
            exec(compile(test, f"test_{i}", "exec"), g)
            report(f"case {i} pass")
        except AssertionError:
            report(f"case {i} wrong")
        except MemoryError:
            report(f"case {i} memory")
        except BaseException:
            fail_trace()
            report(f"case {i} error")
    report("done finished")


def _run_call_cases(g: dict, tests: dict, report, fail_trace) -> None:
    name = tests["fn_name"]
    fn = g.get(name)
    if fn is None and isinstance(g.get("Solution"), type):
        try:
            fn = getattr(g["Solution"](), name, None)
        except BaseException:
            fn = None
    if not callable(fn):
        report(f"done error missing function {name}")
        return
    for i, (inp, want) in enumerate(zip(tests["inputs"], tests["outputs"])):
        try:
            got = fn(*_call_args(inp))
            report(f"case {i} {'pass' if _values_match(got, _maybe_json(want)) else 'wrong'}")
        except MemoryError:
            report(f"case {i} memory")
        except BaseException:
            fail_trace()
            report(f"case {i} error")
    report("done finished")


def _run_stdio_cases(code: str, tests: dict, report) -> None:
    for i, (inp, want) in enumerate(zip(tests["inputs"], tests["outputs"])):
        with open(".case_in", "w") as f:
            f.write(inp if isinstance(inp, str) else json.dumps(inp))
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            report(f"case {i} error")
            continue
        if pid == 0:
            status = 0
            try:
                os.dup2(os.open(".case_in", os.O_RDONLY), 0)
                os.dup2(os.open(".case_out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
                sys.stdin = open(0, "r", closefd=False)
                sys.stdout = open(1, "w", closefd=False)
                exec(compile(code, "solution.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
            except SystemExit as e:
                status = 0 if e.code in (None, 0) else 1
            except MemoryError:
                status = EXIT_MEMORY
            except BaseException:
                traceback.print_exc(limit=3)
                status = 1
            try:
                sys.stdout.flush()
            except BaseException:
                status = status or 1
            os._exit(status)
        _, st = os.waitpid(pid, 0)
        if os.WIFEXITED(st) and os.WEXITSTATUS(st) == EXIT_MEMORY:
            report(f"case {i} memory")
        elif not (os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0):
            report(f"case {i} error")
        else:
            try:
                with open(".case_out", errors="replace") as f:
                    got = f.read()
            except OSError:
                got = ""
            report(f"case {i} {'pass' if _outputs_match(got, str(want)) else 'wrong'}")
    report("done finished")


# ----------------------------------------------------------------------------- launcher

def _count_tests(tests) -> int:
    if isinstance(tests, dict):
        return min(len(tests.get("inputs", [])), len(tests.get("outputs", [])))
    return len(tests)


def _tail(path: str, n: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def main() -> None:
    job = json.loads(sys.stdin.read())
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    result = {"passed": 0, "total": _count_tests(job["tests"]), "status": "error", "detail": "",
              "isolation": "", "stderr_tail": ""}
    try:
        result["isolation"] = _isolate(job)
        namespaced = job["isolation"] != "none"
    except OSError as e:
        if job["isolation_required"]:
            result["detail"] = f"isolation failed: {e}"
            print(json.dumps(result), flush=True)
            return
        job["isolation"] = "none"
        namespaced = False
        result["isolation"] = f"none (rlimits + process group only; namespaces unavailable: {e})"
    if not namespaced and job["drop_uid"]:
        os.chown(job["workdir"], job["uid"], job["uid"])
    nonce = os.urandom(16).hex()
    rfd, wfd = os.pipe()
    deadline = time.monotonic() + job["timeout_s"]
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        code = 0
        try:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            os.setpgid(0, 0)
            _limit_and_drop(job, namespaced)
            _run_harness(job, wfd, nonce)
        except BaseException as e:
            try:
                os.write(wfd, f"{nonce} done error harness {type(e).__name__}: {e}\n".encode()[:4000])
            except OSError:
                code = 1
        os._exit(code)
    os.close(wfd)
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):  # kernels before 5.3: poll
        pidfd = None
    buf, cap, timed_out, exited = b"", 1 << 20, False, False
    status = 0
    watch = [rfd] + ([pidfd] if pidfd is not None else [])
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(watch, [], [], left if pidfd is not None else min(left, 0.01))
        if rfd in ready:
            chunk = os.read(rfd, 65536)
            if not chunk:
                watch.remove(rfd)
            elif len(buf) < cap:
                buf += chunk
        if pidfd is None or pidfd in ready or not watch:
            got, status = os.waitpid(pid, os.WNOHANG)
            if got:
                exited = True
                break
            if not watch:
                time.sleep(0.01)
    if not exited:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if not namespaced:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    # Drain what the harness managed to report before it ended.
    while rfd in watch:
        ready, _, _ = select.select([rfd], [], [], 0)
        if not ready:
            break
        chunk = os.read(rfd, 65536)
        if not chunk or len(buf) >= cap:
            break
        buf += chunk
    cases: dict[int, str] = {}
    done = None
    for line in buf.decode("utf-8", "replace").splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3 or parts[0] != nonce:
            continue
        if parts[1] == "case" and len(parts) == 4 and parts[2].isdigit():
            cases.setdefault(int(parts[2]), parts[3])
        elif parts[1] == "done" and done is None:
            done = " ".join(parts[2:])
    total = result["total"]
    passed = sum(1 for i, v in cases.items() if v == "pass" and i < total)
    result["passed"] = passed
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    if timed_out:
        result["status"], result["detail"] = "timeout", f"wall clock {job['timeout_s']}s exceeded"
    elif sig == signal.SIGXCPU:
        result["status"], result["detail"] = "timeout", "cpu time limit exceeded"
    elif (done is not None and done.startswith("memory")) or "memory" in cases.values():
        result["status"], result["detail"] = "memory", f"MemoryError (limit {job['memory_mb']} MB)"
    elif sig:
        result["status"], result["detail"] = "killed", f"killed by signal {signal.Signals(sig).name}"
    elif done is None:
        result["status"], result["detail"] = "error", "exited before the tests finished"
    elif done.startswith("error"):
        result["status"], result["detail"] = "error", done
    elif passed == total:
        result["status"], result["detail"] = "ok", f"passed {passed}/{total}"
    elif "error" in cases.values():
        result["status"], result["detail"] = "error", f"passed {passed}/{total}, exception in a test"
    else:
        result["status"], result["detail"] = "wrong", f"passed {passed}/{total}"
    result["stderr_tail"] = _tail(os.path.join(job["workdir"], ".stderr"), job["stderr_tail"])
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
