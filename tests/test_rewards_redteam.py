"""Red team: hostile programs are contained by the sandbox.

Each attack must return within its timeout plus a small margin, leave the test
process unharmed, leave no process running and nothing written outside the
sandbox's own (removed) directory.
"""

from __future__ import annotations

import glob
import os
import socket
import tempfile
import time
import uuid

import psutil
import pytest

from riskpo_mm.rewards import sandbox
from riskpo_mm.rewards.sandbox import SandboxLimits, run_tests

TIMEOUT_S = 1.5
MARGIN_S = 2.5
LIMITS = SandboxLimits(timeout_s=TIMEOUT_S, memory_mb=256, nproc=32)


def _sandbox_processes() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["uids", "cmdline"]):
        try:
            uids = p.info["uids"]
            cmd = " ".join(p.info["cmdline"] or [])
        except (psutil.Error, TypeError):
            continue
        if (uids and uids.real >= sandbox._UID_BASE) or "_sandbox_child.py" in cmd:
            found.append(p)
    return found


def _leftover_workdirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "riskpo-sbx-*")))


@pytest.fixture
def contained():
    """Runs an attack and checks the aftermath: time, processes, work dirs."""
    before_dirs = _leftover_workdirs()

    def run(code: str, tests=("assert True",), limits: SandboxLimits = LIMITS):
        t0 = time.monotonic()
        res = run_tests(code, list(tests) if not isinstance(tests, dict) else tests, limits=limits)
        elapsed = time.monotonic() - t0
        assert elapsed < limits.timeout_s + MARGIN_S, f"returned after {elapsed:.1f}s: {res}"
        deadline = time.monotonic() + 2.0
        while _sandbox_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sandbox_processes() == [], "sandbox processes left running"
        assert _leftover_workdirs() <= before_dirs, "sandbox work directory not removed"
        return res

    return run


def test_isolation_uses_namespaces_here():
    assert "namespaces" in sandbox.isolation_in_effect(LIMITS)


def test_fork_bomb_is_contained(contained):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    res = contained(code)
    assert res.status in ("timeout", "killed")


def test_infinite_loop_times_out(contained):
    res = contained("while True:\n    pass\n")
    assert res.status == "timeout" and res.passed == 0


def test_sleeping_child_that_outlives_the_parent_is_killed(contained):
    code = ("import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(60)\n"
            "    os._exit(0)\n")
    res = contained(code, ["assert 1 + 1 == 2"])
    assert res.status == "ok"


def test_memory_bomb_reports_memory(contained):
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))\n"
    res = contained(code)
    assert res.status == "memory"


def test_disk_fill_stays_in_the_capped_work_dir(contained):
    free_before = psutil.disk_usage(tempfile.gettempdir()).free
    code = ("import os\n"
            "i = 0\n"
            "try:\n"
            "    while True:\n"
            "        with open(f'fill{i}', 'wb') as f:\n"
            "            f.write(b'0' * (4 << 20))\n"
            "        i += 1\n"
            "except OSError:\n"
            "    pass\n")
    res = contained(code, ["assert i < 100"])
    assert res.status == "ok"
    assert psutil.disk_usage(tempfile.gettempdir()).free > free_before - (64 << 20)


def test_stdout_flood_is_capped(contained):
    res = contained("while True:\n    print('x' * 10000)\n")
    assert res.status in ("error", "killed", "timeout")
    assert len(res.stderr_tail) <= LIMITS.stderr_tail


def test_trainer_environment_and_files_are_unreadable(contained, monkeypatch, tmp_path):
    monkeypatch.setenv("RISKPO_REDTEAM_SECRET", "hunter2")
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    secret.chmod(0o600)
    code = ("import os, glob\n"
            "leaks = [k for k, v in os.environ.items() if 'hunter2' in v]\n"
            "for path in glob.glob('/proc/*/environ') + [%r, '/root/.bashrc']:\n"
            "    try:\n"
            "        if 'hunter2' in open(path, errors='replace').read():\n"
            "            leaks.append(path)\n"
            "    except OSError:\n"
            "        pass\n"
            "visible_pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
            "home = [n for n in os.listdir('/root') if not os.path.isdir('/root/' + n)]\n") % str(secret)
    res = contained(code, ["assert leaks == [], leaks", "assert len(visible_pids) <= 2, visible_pids",
                           "assert home == [], home"])  # only the interpreter's directory stays visible
    assert res.status == "ok", res


def test_writes_outside_the_sandbox_fail(contained):
    name = f"riskpo-escape-{uuid.uuid4().hex}"
    targets = [os.path.join(d, name) for d in (tempfile.gettempdir(), "/var/tmp", "/dev/shm", os.getcwd(),
                                                os.path.expanduser("~"))]
    code = ("import os\n"
            "written = []\n"
            f"for path in {targets!r} + ['../' + {name!r}]:\n"
            "    try:\n"
            "        with open(path, 'w') as f:\n"
            "            f.write('x')\n"
            "        written.append(path)\n"
            "    except OSError:\n"
            "        pass\n"
            "with open('inside.txt', 'w') as f:\n"
            "    f.write('fine')\n")
    res = contained(code, ["assert written == [], written", "assert open('inside.txt').read() == 'fine'"])
    assert res.status == "ok", res
    assert not any(os.path.exists(t) for t in targets)


def test_sockets_reach_nothing(contained):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    code = ("import socket\n"
            "reached = []\n"
            f"for addr in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('8.8.8.8', 443)]:\n"
            "    try:\n"
            "        socket.create_connection(addr, timeout=0.5).close()\n"
            "        reached.append(addr)\n"
            "    except OSError:\n"
            "        pass\n")
    try:
        res = contained(code, ["assert reached == [], reached"])
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
    assert res.status == "ok", res


def test_killing_the_parent_fails(contained):
    me = os.getpid()
    code = ("import os, signal\n"
            "for target in (os.getppid(), %d, -1):\n"
            "    try:\n"
            "        os.kill(target, signal.SIGKILL)\n"
            "    except OSError:\n"
            "        pass\n"
            "try:\n"
            "    os.killpg(%d, signal.SIGKILL)\n"
            "except OSError:\n"
            "    pass\n") % (me, os.getpgid(me))
    contained(code)
    assert psutil.Process(me).is_running()


def test_ignoring_sigterm_does_not_help(contained):
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n"
    res = contained(code)
    assert res.status == "timeout"


def test_recursion_bomb_is_contained(contained):
    code = "import sys\nsys.setrecursionlimit(10 ** 8)\ndef f(n):\n    return f(n + 1) + 1\nf(0)\n"
    res = contained(code)
    assert res.status in ("killed", "error", "memory", "timeout")


def test_default_recursion_limit_gives_error(contained):
    res = contained("def f(n):\n    return f(n + 1)\n", ["assert f(0) == 1"])
    assert res.status == "error" and res.passed == 0
