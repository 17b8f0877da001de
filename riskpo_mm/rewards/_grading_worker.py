"""Grading worker process: reads framed requests on stdin, answers on its own copy of stdout.

Started by :class:`riskpo_mm.rewards.grading_pool.GradingPool` as
``python -m riskpo_mm.rewards._grading_worker``. A frame is a 4-byte
big-endian length and a pickle; the first frame out is ``("ready", pid)``.
A request ``(op, args, soft_s)`` runs :func:`symbolic.grade` (op "grade")
under a soft timer of ``soft_s`` seconds (SIGALRM: works here, this is the
main thread; math-verify's own alarms are off, they would cancel it); the reply is ``("ok", value)``, ``("timeout", detail)`` or
``("error", detail)``. The parent kills the whole process when even the soft
timer cannot interrupt (C-level sympy arithmetic).
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import struct
import sys

MEMORY_MB = int(os.environ.get("RISKPO_GRADER_MEMORY_MB", "4096"))


class _SoftTimeout(BaseException):
    """Not an Exception: math-verify's ``except Exception`` must not swallow it."""


def _alarm(signum, frame):  # noqa: ARG001
    raise _SoftTimeout()


def _hang_in_c() -> None:
    """Test op: minutes in one C call that no signal handler interrupts (only the kill ends it)."""
    import hashlib

    hashlib.pbkdf2_hmac("sha256", b"x", b"y", 2 ** 31 - 1)


def _read_exact(f, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _send(out, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(struct.pack(">I", len(data)) + data)
    out.flush()


def main() -> int:
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the protocol
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_MB << 20, MEMORY_MB << 20))
    except (ValueError, OSError):
        pass
    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns on every call without its timeouts
    from riskpo_mm.rewards import symbolic

    import math_verify  # noqa: F401  (import cost paid before "ready")

    symbolic.USE_MV_TIMEOUTS = False  # its signal.alarm would cancel the soft timer below
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp = sys.stdin.buffer
    _send(proto_out, ("ready", os.getpid()))
    ops = {"grade": symbolic.grade, "selftest_hang": _hang_in_c}
    while True:
        head = _read_exact(inp, 4)
        if head is None:
            return 0
        body = _read_exact(inp, struct.unpack(">I", head)[0])
        if body is None:
            return 0
        try:
            op, args, soft_s = pickle.loads(body)
            signal.setitimer(signal.ITIMER_REAL, max(0.01, float(soft_s)))
            try:
                reply = ("ok", ops[op](*args))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _SoftTimeout:
            reply = ("timeout", "soft timer")
        except MemoryError:
            reply = ("error", "MemoryError")
        except Exception as e:  # a grading bug must not end the worker
            reply = ("error", f"{type(e).__name__}: {e}"[:500])
        try:
            _send(proto_out, reply)
        except _SoftTimeout:  # the timer fired between the work and the reply
            _send(proto_out, ("timeout", "soft timer"))


if __name__ == "__main__":
    raise SystemExit(main())
