"""Sandbox launcher and judge (trusted, outside) and harness (inside): standard library only.

Process layout (one file, two roles)::

    trainer ── launcher + judge (``python -I -S _sandbox_child.py``; job JSON on stdin,
                 │               one result JSON line on stdout)
                 └── bwrap ── harness (``python -I -S -c <this file> harness``): runs the code

The judge holds everything a verdict depends on: the test code, the expected
outputs and the comparison. The harness is sent only the solution, call
arguments and stdin inputs, and answers with *plain data* (JSON with tags for
tuple, set, dict, bytes, complex); anything else stays in the sandbox as an
opaque handle that equals nothing and has no truth value. Test statements run
in the judge's interpreter with its own builtins; a name the solution defined
is a proxy whose calls travel to the harness. So whatever the solution does to
its own process (replaced builtins, always-equal objects, frame walking, forged
replies, early exit) it can only choose the plain values its functions return,
never what they are compared with nor whether a test ran to its end.

Every read from the sandbox is from a pipe the launcher holds, with a size cap
and the run's deadline; no path inside the sandbox is ever opened here.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

EXIT_MEMORY = 86  # a stdin case died of MemoryError
MAX_DEPTH = 100  # nesting of a plain value
MAX_REPLY = 32 << 20  # bytes of one harness reply
OUT_CAP = 8 << 20  # bytes of stdout/stderr drained before the pipe is closed
CASE_OUT_CAP = 4 << 20  # stdout of one stdin case
ENCODE_BUDGET = 4 << 20  # size units (elements + characters) of one plain value sent back
APPLY = {"len": len, "getitem": lambda o, k: o[k], "contains": lambda o, k: k in o, "list": list}
JUDGE_MODULES = frozenset({
    "array", "bisect", "cmath", "collections", "copy", "datetime", "decimal", "fractions", "functools",
    "heapq", "itertools", "json", "math", "operator", "random", "re", "statistics", "string", "typing"})


# ----------------------------------------------------------------------------- plain data

class NotPlain(Exception):
    """A value that is not plain data (exact builtin types only)."""


def encode(v, depth: int = 0, budget: list | None = None):
    """Plain value -> JSON-able tagged form; raises NotPlain for anything else (subclasses too).

    ``budget`` ([remaining size units]) caps the work: a value bigger than it is not sent.
    """
    if budget is None:
        budget = [ENCODE_BUDGET]
    t = type(v)
    budget[0] -= len(v) + 1 if t in (str, bytes, bytearray) else 1
    if budget[0] < 0:
        raise NotPlain("too large")
    if v is None or t is bool or t is str or t is int or t is float:
        return v
    if depth > MAX_DEPTH:
        raise NotPlain("too deep")
    d = depth + 1
    if t is list:
        return [encode(x, d, budget) for x in v]
    if t is tuple:
        return {"t": [encode(x, d, budget) for x in v]}
    if t is set:
        return {"s": [encode(x, d, budget) for x in v]}
    if t is frozenset:
        return {"f": [encode(x, d, budget) for x in v]}
    if t is dict:
        return {"d": [[encode(k, d, budget), encode(x, d, budget)] for k, x in v.items()]}
    if t is bytes:
        return {"b": v.hex()}
    if t is bytearray:
        return {"y": v.hex()}
    if t is complex:
        return {"c": [v.real, v.imag]}
    raise NotPlain(t.__name__)


def decode(v, depth: int = 0, refs: list | None = None):
    """Tagged form -> plain value; raises ValueError on anything malformed. ``refs``: handle table."""
    t = type(v)
    if v is None or t is bool or t is str or t is int or t is float:
        return v
    if depth > MAX_DEPTH + 2:
        raise ValueError("too deep")
    d = depth + 1
    if t is list:
        return [decode(x, d, refs) for x in v]
    if t is not dict or len(v) != 1:
        raise ValueError("not a plain-data encoding")
    (tag, p), = v.items()
    if tag == "r" and refs is not None and type(p) is int and 0 <= p < len(refs):
        return refs[p]
    if tag in ("b", "y") and type(p) is str:
        return bytes.fromhex(p) if tag == "b" else bytearray.fromhex(p)
    if type(p) is not list:
        raise ValueError("bad payload")
    if tag == "t":
        return tuple(decode(x, d, refs) for x in p)
    if tag == "s":
        return {decode(x, d, refs) for x in p}
    if tag == "f":
        return frozenset(decode(x, d, refs) for x in p)
    if tag == "d":
        return {decode(k, d, refs): decode(x, d, refs) for k, x in p}
    if tag == "c" and len(p) == 2 and all(type(x) in (int, float) for x in p):
        return complex(p[0], p[1])
    raise ValueError(f"unknown tag {tag!r}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# ----------------------------------------------------------------------------- harness (inside)

def _harness() -> None:
    """Inside the sandbox: run the solution, answer the judge's requests with plain data."""
    import builtins
    import resource
    import traceback
    import types

    req = open(os.dup(0), "rb")
    rep = 3
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.set_inheritable(rep, False)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", closefd=False, buffering=1, errors="replace")
    sys.stderr = open(2, "w", closefd=False, buffering=1, errors="replace")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    job = json.loads(req.readline())
    lim = job["limits"]
    for res, val in ((resource.RLIMIT_AS, lim["memory_mb"] << 20), (resource.RLIMIT_CPU, lim["cpu_s"]),
                     (resource.RLIMIT_FSIZE, lim["fsize_mb"] << 20), (resource.RLIMIT_NOFILE, lim["nofile"]),
                     (resource.RLIMIT_NPROC, lim["nproc"]), (resource.RLIMIT_CORE, 0),
                     (resource.RLIMIT_MEMLOCK, 0), (resource.RLIMIT_MSGQUEUE, 0)):
        try:
            resource.setrlimit(res, (val, val))
        except (ValueError, OSError):
            resource.setrlimit(res, (min(val, resource.getrlimit(res)[1]),) * 2)
    handles: list = []

    def send(obj: dict) -> None:
        _write_all(rep, (json.dumps(obj) + "\n").encode())

    def value_reply(v) -> dict:
        try:
            return {"v": encode(v)}
        except (NotPlain, RecursionError):
            handles.append(v)
            try:
                kind = str(type(v).__name__)[:60]
            except BaseException:
                kind = "object"
            return {"h": len(handles) - 1, "k": kind}

    def send_value(v, extra: dict | None = None) -> None:
        msg = value_reply(v)
        if extra:
            msg.update(extra)
        try:
            line = json.dumps(msg)
        except (ValueError, RecursionError, OverflowError):  # e.g. an int beyond the digit limit
            handles.append(v)
            line = json.dumps({"h": len(handles) - 1, "k": "unserialisable"})
        _write_all(rep, (line + "\n").encode())

    def exc_reply(e: BaseException) -> dict:
        if not isinstance(e, MemoryError):
            try:
                traceback.print_exc(limit=3)
            except BaseException:
                pass
        try:
            msg = str(e)[:300]
        except BaseException:
            msg = ""
        return {"x": type(e).__name__ if type(e).__module__ == "builtins" else "Exception", "m": msg}

    try:
        compiled = compile(job["code"], "solution.py", "exec")
    except BaseException as e:
        send({"defined": False, **exc_reply(e)})
        return
    if job["mode"] == "stdio":
        send({"defined": True, "names": {}})
        for line in req:
            msg = json.loads(line)
            send(_stdio_case(compiled, msg["input"], req.fileno(), rep, builtins, traceback))
        return
    g: dict = {"__name__": "solution", "__builtins__": builtins}
    try:
        exec(compiled, g)
    except BaseException as e:
        send({"defined": False, **exc_reply(e)})
        return
    names = {}
    for name, v in list(g.items())[:2000]:
        if type(name) is not str or name.startswith("__"):
            continue
        if type(v) is types.ModuleType:
            names[name] = {"m": str(v.__name__)}
        else:
            names[name] = value_reply(v)
    send({"defined": True, "names": names})
    for line in req:
        try:
            msg = json.loads(line)
            target = handles[msg["h"]]
            if msg["op"] == "getattr":
                v = getattr(target, msg["name"])
                send_value(v)
                continue
            if msg["op"] == "apply":  # len(), [], in, list() on a value that stayed inside
                send_value(APPLY[msg["fn"]](target, *[decode(a, refs=handles) for a in msg["args"]]))
                continue
            args = [decode(a, refs=handles) for a in msg["args"]]
            kw = {k: decode(a, refs=handles) for k, a in msg["kw"].items()}
        except BaseException as e:
            send(exc_reply(e))
            continue
        try:
            v = target(*args, **kw)
        except BaseException as e:
            send(exc_reply(e))
            continue
        back = []
        for a in args:
            try:
                back.append(encode(a) if type(a) in (list, dict, set, bytearray) else None)
            except (NotPlain, RecursionError):
                back.append(None)
        send_value(v, {"a": back})


def _stdio_case(compiled, text: str, req_fd: int, rep_fd: int, builtins, traceback) -> dict:
    """Run the program once on ``text`` in a forked child; its stdout (capped) is the observation."""
    mfd = os.memfd_create("stdin")
    _write_all(mfd, text.encode("utf-8", "replace"))
    os.lseek(mfd, 0, os.SEEK_SET)
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as e:
        os.close(r), os.close(w), os.close(mfd)
        return {"x": type(e).__name__, "m": str(e)}
    if pid == 0:
        status = 1
        try:
            os.close(r)
            os.close(req_fd)
            os.close(rep_fd)  # the program cannot answer for the harness
            os.dup2(mfd, 0)
            os.dup2(w, 1)
            sys.stdin = open(0, "r", closefd=False)
            sys.stdout = open(1, "w", closefd=False)
            try:
                exec(compiled, {"__name__": "__main__", "__builtins__": builtins})
                status = 0
            except SystemExit as e:
                status = 0 if e.code in (None, 0) else 1
            except MemoryError:
                status = EXIT_MEMORY
            except BaseException:
                traceback.print_exc(limit=3)
            try:
                sys.stdout.flush()
            except BaseException:
                status = status or 1
        finally:
            os._exit(status)
    os.close(w)
    os.close(mfd)
    pidfd = os.pidfd_open(pid)
    buf, too_big, exited = bytearray(), False, False
    while not exited:
        ready, _, _ = select.select([r, pidfd], [], [])
        if r in ready:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            buf += chunk
            if len(buf) > CASE_OUT_CAP:
                too_big = True
                break
        exited = pidfd in ready
    if exited:  # drain what is already there; a leftover grandchild may hold the pipe open
        os.set_blocking(r, False)
        try:
            while len(buf) <= CASE_OUT_CAP and (chunk := os.read(r, 65536)):
                buf += chunk
        except BlockingIOError:
            pass
    if too_big or len(buf) > CASE_OUT_CAP:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os.close(r)
    _, st = os.waitpid(pid, 0)
    os.close(pidfd)
    if too_big or len(buf) > CASE_OUT_CAP:
        return {"x": "OutputTooLarge", "m": f"more than {CASE_OUT_CAP} bytes"}
    if os.WIFEXITED(st) and os.WEXITSTATUS(st) == EXIT_MEMORY:
        return {"x": "MemoryError", "m": ""}
    if not (os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0):
        return {"x": "ProgramFailed", "m": f"wait status {st}"}
    return {"o": buf.decode("utf-8", "replace")}


# ----------------------------------------------------------------------------- judge (outside)

class JudgeTimeout(BaseException):
    """The run's wall clock ran out (raised from SIGALRM or a channel wait)."""


class SandboxGone(Exception):
    """The harness ended (or its channel broke) before answering."""


class SolutionError(Exception):
    """The solution raised something that is not a builtin ``Exception``."""


class RemoteMemoryError(Exception):
    """The solution ran out of memory inside the sandbox."""


class Channel:
    """Request/reply pipes to the harness plus the drained output pipe; every wait has the deadline."""

    def __init__(self, wfd: int, rfd: int, outfd: int, deadline: float, tail: int) -> None:
        self.wfd, self.rfd, self.outfd, self.deadline, self.tail = wfd, rfd, outfd, deadline, tail
        for fd in (wfd, rfd, outfd):
            os.set_blocking(fd, False)
        self.buf = bytearray()
        self.out = bytearray()
        self.out_total = 0
        self.memory_hit = False
        self.gone = False

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise JudgeTimeout()
        return left

    def _drain_out(self) -> None:
        try:
            chunk = os.read(self.outfd, 65536)
        except BlockingIOError:
            return
        if not chunk or self.out_total > OUT_CAP:  # EOF, or a flood: close so writers get EPIPE
            os.close(self.outfd)
            self.outfd = -1
            return
        self.out_total += len(chunk)
        self.out += chunk
        if len(self.out) > 4 * self.tail:
            del self.out[:-2 * self.tail]

    def drain(self) -> None:
        """Read whatever output is waiting, without blocking."""
        while self.outfd >= 0 and select.select([self.outfd], [], [], 0)[0]:
            self._drain_out()

    def send(self, obj: dict) -> None:
        if self.gone:
            raise SandboxGone("sandbox ended")
        view = memoryview((json.dumps(obj) + "\n").encode())
        while view:
            rd = [self.outfd] if self.outfd >= 0 else []
            r, w, _ = select.select(rd, [self.wfd], [], self._left())
            if self.outfd in r:
                self._drain_out()
            if w:
                try:
                    view = view[os.write(self.wfd, view):]
                except BlockingIOError:
                    continue
                except OSError as e:
                    self.gone = True
                    raise SandboxGone(f"sandbox ended ({e.strerror})") from None

    def recv(self) -> dict:
        if self.gone:
            raise SandboxGone("sandbox ended")
        while b"\n" not in self.buf:
            rd = [self.rfd] + ([self.outfd] if self.outfd >= 0 else [])
            r, _, _ = select.select(rd, [], [], self._left())
            if self.outfd in r:
                self._drain_out()
            if self.rfd in r:
                try:
                    chunk = os.read(self.rfd, 1 << 20)
                except BlockingIOError:
                    continue
                if not chunk:
                    self.gone = True
                    raise SandboxGone("sandbox ended before answering")
                self.buf += chunk
                if len(self.buf) > MAX_REPLY:
                    self.gone = True
                    raise SandboxGone("reply over the size cap")
        line, _, rest = bytes(self.buf).partition(b"\n")
        self.buf = bytearray(rest)
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError):
            raise SandboxGone("malformed reply") from None
        if type(msg) is not dict:
            raise SandboxGone("malformed reply")
        return msg

    # -- calls into the solution
    def value(self, msg: dict):
        """A reply -> a plain value, a Remote handle, or the solution's exception raised here."""
        if "x" in msg:
            name, text = str(msg.get("x")), str(msg.get("m", ""))[:300]
            if name == "MemoryError":
                self.memory_hit = True
                raise RemoteMemoryError(text)
            import builtins
            cls = getattr(builtins, name, None)
            if not (isinstance(cls, type) and issubclass(cls, Exception)):
                cls = SolutionError
            raise cls(text)
        if "h" in msg and type(msg["h"]) is int:
            return Remote(self, msg["h"], str(msg.get("k", "object"))[:60])
        if "v" in msg:
            try:
                return decode(msg["v"])
            except (ValueError, TypeError, RecursionError):
                raise SandboxGone("malformed value") from None
        raise SandboxGone("malformed reply")

    def call(self, h: int, args: tuple, kw: dict):
        try:
            enc = [_encode_arg(a) for a in args]
            kenc = {str(k): _encode_arg(a) for k, a in kw.items()}
        except (NotPlain, RecursionError) as e:
            raise TypeError(f"argument to a solution function is not plain data: {e}") from None
        self.send({"op": "call", "h": h, "args": enc, "kw": kenc})
        msg = self.recv()
        v = self.value(msg)
        back = msg.get("a")
        if type(back) is list and len(back) == len(args):  # in-place changes to list/dict/set arguments
            for orig, new in zip(args, back):
                if new is None or type(orig) not in (list, dict, set, bytearray):
                    continue
                try:
                    new = decode(new)
                except (ValueError, TypeError, RecursionError):
                    continue
                if type(new) is type(orig):
                    if type(orig) in (list, bytearray):
                        orig[:] = new
                    else:
                        orig.clear()
                        orig.update(new)
        return v

    def getattr(self, h: int, name: str):
        self.send({"op": "getattr", "h": h, "name": name})
        return self.value(self.recv())

    def apply(self, h: int, fn: str, *args):
        try:
            enc = [_encode_arg(a) for a in args]
        except (NotPlain, RecursionError) as e:
            raise TypeError(f"argument is not plain data: {e}") from None
        self.send({"op": "apply", "h": h, "fn": fn, "args": enc})
        return self.value(self.recv())


def _encode_arg(a):
    if type(a) is Remote:
        return {"r": object.__getattribute__(a, "_h")}
    return encode(a)


class Remote:
    """A non-plain object that stays in the sandbox: callable and attribute access go there.

    It equals nothing and has no truth value, so it can never make a test pass by itself.
    """

    __slots__ = ("_ch", "_h", "_k")

    def __init__(self, ch: Channel, h: int, kind: str) -> None:
        self._ch, self._h, self._k = ch, h, kind

    def __call__(self, *args, **kw):
        return self._ch.call(self._h, args, kw)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._ch.getattr(self._h, name)

    def __len__(self) -> int:
        n = self._ch.apply(self._h, "len")
        if type(n) is not int:
            raise TypeError("len() of a solution object is not an int")
        return n

    def __getitem__(self, key):
        return self._ch.apply(self._h, "getitem", key)

    def __contains__(self, key) -> bool:
        got = self._ch.apply(self._h, "contains", key)
        if type(got) is not bool:
            raise TypeError("'in' on a solution object gave no bool")
        return got

    def __iter__(self):
        got = self._ch.apply(self._h, "list")
        if type(got) is not list:
            raise TypeError("a solution object iterated to no plain list")
        return iter(got)

    def __eq__(self, other) -> bool:
        return False

    def __ne__(self, other) -> bool:
        return True

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise TypeError(f"a {self._k} from the solution is not plain data")

    def __repr__(self) -> str:
        return f"<solution {self._k}>"


def _normalise_text(s: str) -> list[str]:
    lines = [ln.rstrip() for ln in s.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _outputs_match(got: str, want: str) -> bool:
    import math
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
    import math
    if type(got) is Remote:
        return False
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


def _judge(ch: Channel, job: dict, cases: dict[int, str], notes: list[str]) -> str | None:
    """Run the tests against the harness; fills ``cases`` (i -> pass|wrong|error|memory).

    Returns a definition-level failure ("error ..." / "memory ...") or None.
    """
    import builtins
    import traceback
    tests = job["tests"]
    stdio = isinstance(tests, dict) and not tests.get("fn_name")
    ch.send({"code": job["code"], "mode": "stdio" if stdio else "exec", "limits": job["harness_limits"]})
    first = ch.recv()
    if first.get("defined") is not True:
        if first.get("x") == "MemoryError":
            return "memory definition"
        return f"error {str(first.get('x', 'definition'))[:80]}"
    if stdio:
        for i, (inp, want) in enumerate(zip(tests["inputs"], tests["outputs"])):
            ch.send({"op": "stdio", "input": inp if isinstance(inp, str) else json.dumps(inp)})
            msg = ch.recv()
            if "o" in msg and type(msg["o"]) is str:
                cases[i] = "pass" if _outputs_match(msg["o"], str(want)) else "wrong"
            else:
                cases[i] = "memory" if msg.get("x") == "MemoryError" else "error"
        return None
    g: dict = {"__builtins__": builtins, "__name__": "__test__"}
    names = first.get("names")
    for name, desc in (names.items() if type(names) is dict else ()):
        if type(desc) is not dict:
            continue
        if "m" in desc:
            mod = str(desc["m"])
            if mod in JUDGE_MODULES:
                g[name] = __import__(mod)
            continue
        try:
            g[name] = ch.value(desc)
        except Exception:
            continue
    if isinstance(tests, dict):
        fn = g.get(tests["fn_name"])
        if fn is None and type(g.get("Solution")) is Remote:
            try:
                fn = getattr(g["Solution"](), tests["fn_name"])
            except Exception:
                fn = None
        if type(fn) is not Remote:
            return f"error missing function {tests['fn_name']}"
        for i, (inp, want) in enumerate(zip(tests["inputs"], tests["outputs"])):
            try:
                got = fn(*_call_args(inp))
                cases[i] = "pass" if _values_match(got, _maybe_json(want)) else "wrong"
            except RemoteMemoryError:
                cases[i] = "memory"
            except Exception as e:
                cases[i] = "error"
                notes.append(f"case {i}: {type(e).__name__}: {e}"[:300])
        return None
    for i, test in enumerate(tests):
        try:
            exec(compile(test, f"test_{i}", "exec"), g)
            cases[i] = "pass"
        except AssertionError as e:
            cases[i] = "wrong"
            notes.append(f"test {i} failed: {e}"[:300])
        except RemoteMemoryError:
            cases[i] = "memory"
        except Exception as e:
            cases[i] = "error"
            notes.append(f"test {i}: " + "".join(traceback.format_exception_only(type(e), e)).strip()[:300])
    return None


def _on_alarm(signum, frame) -> None:
    raise JudgeTimeout()


def _exec_sandbox(job: dict, req_r: int, out_w: int, rep_w: int) -> None:
    """Child of the launcher: join the run's cgroup, drop to the sandbox uid, exec bwrap."""
    import fcntl
    try:
        os.setpgid(0, 0)
        for path in job["cgroup_procs"]:
            with open(path, "w") as f:
                f.write(str(os.getpid()))
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (req_r, out_w, rep_w)]
        for src, dst in zip((high[0], high[1], high[1], high[2]), (0, 1, 2, 3)):
            os.dup2(src, dst)
        os.closerange(4, 1 << 16)
        if job["cwd"]:
            os.chdir(job["cwd"])
        uid = job["sandbox_uid"]
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        os.execve(job["argv"][0], job["argv"], job["env"])
    except BaseException as e:
        try:
            os.write(2, f"sandbox start failed: {type(e).__name__}: {e}\n".encode())
        finally:
            os._exit(127)


def _judge_raw(job: dict, req_w: int, rep_r: int, out_r: int, deadline: float) -> dict:
    """Judge the run; the raw outcome (classified by ``_classify`` once the sandbox has ended)."""
    ch = Channel(req_w, rep_r, out_r, deadline, job["stderr_tail"])
    cases: dict[int, str] = {}
    notes: list[str] = []
    signal.signal(signal.SIGALRM, _on_alarm)
    timed_out, failure = False, None
    try:
        signal.setitimer(signal.ITIMER_REAL, max(0.001, deadline - time.monotonic()))
        try:
            failure = _judge(ch, job, cases, notes)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except JudgeTimeout:
        timed_out = True
    except SandboxGone as e:
        failure = f"gone {e}"
    except Exception as e:  # a judge bug must still give a verdict (0)
        failure = f"error judge {type(e).__name__}: {e}"
    if ch.gone and not timed_out and not (failure or "").startswith("memory"):
        failure = failure if (failure or "").startswith("gone") else "gone sandbox ended"
    try:
        ch.drain()
    except OSError:
        pass
    tail = ch.out.decode("utf-8", "replace")
    if notes:
        tail += "\n" + "\n".join(notes)
    return {"cases": {str(k): v for k, v in cases.items()}, "failure": failure, "timed_out": timed_out,
            "memory": ch.memory_hit, "tail": tail}


def _classify(raw: dict, exit_code: int, job: dict, total: int) -> dict:
    """Status from the judge's raw outcome and the sandbox's exit code."""
    cases = {int(k): v for k, v in raw["cases"].items()}
    failure = raw["failure"]
    passed = sum(1 for i, v in cases.items() if v == "pass" and i < total)
    if raw["timed_out"]:
        status, detail = "timeout", f"wall clock {job['timeout_s']:.3g}s exceeded"
    elif raw["memory"] or (failure or "").startswith("memory") or "memory" in cases.values():
        status, detail = "memory", f"MemoryError (limit {job['harness_limits']['memory_mb']} MB)"
    elif failure and failure.startswith("gone"):
        sig = exit_code - 128 if exit_code > 128 else 0
        if sig == signal.SIGXCPU:
            status, detail = "timeout", "cpu time limit exceeded"
        elif sig:
            status, detail = "killed", f"killed by signal {signal.Signals(sig).name}"
        else:
            status, detail = "error", "exited before the tests finished"
    elif failure:
        status, detail = "error", failure[6:] if failure.startswith("error ") else failure
    elif len(cases) < total:
        status, detail = "error", "exited before the tests finished"
    elif passed == total:
        status, detail = "ok", f"passed {passed}/{total}"
    elif "error" in cases.values():
        status, detail = "error", f"passed {passed}/{total}, exception in a test"
    else:
        status, detail = "wrong", f"passed {passed}/{total}"
    n = job["stderr_tail"]
    return {"passed": passed, "total": total, "status": status, "detail": detail,
            "stderr_tail": raw["tail"][-n:] if n > 0 else "", "sandbox_exit": exit_code}


def _read_bounded(fd: int, deadline: float, cap: int = 1 << 20) -> bytes:
    buf = b""
    while len(buf) < cap:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    return buf


def main() -> None:
    job = json.loads(sys.stdin.buffer.read())
    deadline = time.monotonic() + job["timeout_s"]
    tests = job["tests"]
    total = len(tests["inputs"]) if isinstance(tests, dict) else len(tests)
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _exec_sandbox(job, req_r, out_w, rep_w)
    for fd in (req_r, out_w, rep_w):
        os.close(fd)
    if job["judge_uid"] is None:
        raw = _judge_raw(job, req_w, rep_r, out_r, deadline)
    else:  # as root: the judge (it runs test code) is a child under its own unprivileged uid
        res_r, res_w = os.pipe()
        jpid = os.fork()
        if jpid == 0:
            try:
                os.close(res_r)
                for mod in JUDGE_MODULES:
                    __import__(mod)
                import traceback  # noqa: F401  (before dropping privileges)
                u = job["judge_uid"]
                os.setgroups([])
                os.setresgid(u, u, u)
                os.setresuid(u, u, u)
                _write_all(res_w, json.dumps(_judge_raw(job, req_w, rep_r, out_r, deadline)).encode())
            finally:
                os._exit(0)
        for fd in (res_w, req_w, rep_r, out_r):
            os.close(fd)
        data = _read_bounded(res_r, deadline + 0.5, MAX_REPLY)
        try:
            os.kill(jpid, signal.SIGKILL)
        except OSError:
            pass
        os.waitpid(jpid, 0)
        try:
            raw = json.loads(data)
        except ValueError:
            raw = {"cases": {}, "failure": None, "timed_out": True, "memory": False, "tail": ""}
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    sys.stdout.write(json.dumps(_classify(raw, code, job, total)) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["harness"]:
        _harness()
    else:
        main()
