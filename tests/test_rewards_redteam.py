"""Red team: hostile programs are contained, for a root trainer and for a fresh non-root one.

Every attack runs twice: in this (root) process, and from a trainer process
running as a user created for this session (``useradd``). Each must return
within its timeout plus a small margin, leave no process, cgroup or file
behind, and earn nothing it did not honestly compute. Threat model:
docs/sandbox.md.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import psutil
import pytest

from riskpo_mm.rewards import sandbox
from riskpo_mm.rewards.sandbox import ExecResult, SandboxLimits, run_tests

TIMEOUT_S = 1.5
MARGIN_S = 2.5
LIMITS = SandboxLimits(timeout_s=TIMEOUT_S, memory_mb=256, nproc=32)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
RUNNER = """
import json, sys, types
for name, sub in (("riskpo_mm", "riskpo_mm"), ("riskpo_mm.rewards", "riskpo_mm/rewards")):
    mod = types.ModuleType(name)
    mod.__path__ = [sys.argv[1] + "/" + sub]
    sys.modules[name] = mod
from riskpo_mm.rewards.sandbox import SandboxLimits, run_tests
job = json.load(sys.stdin)
print(json.dumps(run_tests(job["code"], job["tests"], limits=SandboxLimits(**job["limits"])).__dict__))
"""

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap not installed (apt-get install -y bubblewrap)")


@pytest.fixture(scope="session")
def trainer_user():
    """A freshly created unprivileged user with a home holding a 0600 secret."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("creating a non-root trainer needs root and useradd")
    if not os.path.exists(USER_PYTHON):
        pytest.skip(f"{USER_PYTHON} (an interpreter a non-root user can run) is missing")
    name = f"rt{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    pw = pwd.getpwnam(name)
    readable = subprocess.run([USER_PYTHON, "-I", "-c", "import sys; open(sys.argv[1]).close()",
                               os.path.join(REPO, "riskpo_mm", "rewards", "sandbox.py")],
                              user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], capture_output=True, cwd="/")
    if readable.returncode != 0:
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
        pytest.skip(f"the checkout {REPO} is not readable by an unprivileged user (a 0700 directory above it?); "
                    "the non-root red team runs the trainer as such a user from this checkout")
    secret = os.path.join(pw.pw_dir, "secret.txt")
    with open(secret, "w") as f:
        f.write("hunter2")
    os.chown(secret, pw.pw_uid, pw.pw_gid)
    os.chmod(secret, 0o600)
    yield pw
    subprocess.run(["pkill", "-KILL", "-u", name], check=False)
    subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


@pytest.fixture(params=["root", "user"])
def trainer(request) -> dict:
    """Who runs the trainer: this root process, or a fresh unprivileged user."""
    if request.param == "root":
        home = tempfile.mkdtemp(prefix="riskpo-rt-root-")
        with open(os.path.join(home, "secret.txt"), "w") as f:
            f.write("hunter2")
        os.chmod(os.path.join(home, "secret.txt"), 0o600)
        request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
        return {"kind": "root", "uid": 0, "home": home}
    pw = request.getfixturevalue("trainer_user")
    return {"kind": "user", "uid": pw.pw_uid, "home": pw.pw_dir, "name": pw.pw_name}


def _sandbox_processes(trainer: dict) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["uids", "cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:  # exited; only its pid entry awaits init's reaping
                continue
            uids = p.info["uids"]
            cmd = " ".join(p.info["cmdline"] or [])
        except (psutil.Error, TypeError):
            continue
        if uids and (uids.real >= sandbox._UID_BASE or (trainer["uid"] and uids.real == trainer["uid"])):
            found.append(p)
        elif "_sandbox_child.py" in cmd or "bwrap" in cmd:
            found.append(p)
    return found


def _leftovers() -> set[str]:
    return set(glob.glob("/sys/fs/cgroup/*/**/riskpo-sbx-*", recursive=True)
               + glob.glob(os.path.join(tempfile.gettempdir(), "riskpo-sbx-*")))


@pytest.fixture
def contained(trainer):
    """Runs an attack as ``trainer`` and checks the aftermath: time, processes, cgroups, files."""
    before = _leftovers()
    home_before = sorted(os.listdir(trainer["home"]))

    def run(code: str, tests=("assert True",), limits: SandboxLimits = LIMITS) -> ExecResult:
        tests = list(tests) if not isinstance(tests, dict) else tests
        t0 = time.monotonic()
        if trainer["kind"] == "root":
            res = run_tests(code, tests, limits=limits)
        else:
            job = json.dumps({"code": code, "tests": tests, "limits": limits.__dict__})
            proc = subprocess.run([USER_PYTHON, "-I", "-c", RUNNER, REPO], input=job, capture_output=True,
                                  text=True, user=trainer["uid"], group=pwd.getpwuid(trainer["uid"]).pw_gid,
                                  extra_groups=[], cwd=trainer["home"], timeout=60,
                                  env={"HOME": trainer["home"], "PATH": "/usr/bin:/bin"})
            assert proc.returncode == 0, proc.stderr
            res = ExecResult(**json.loads(proc.stdout.strip().splitlines()[-1]))
        elapsed = time.monotonic() - t0
        assert elapsed < limits.timeout_s + MARGIN_S, f"returned after {elapsed:.1f}s: {res}"
        deadline = time.monotonic() + 2.0
        while _sandbox_processes(trainer) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sandbox_processes(trainer) == [], "sandbox processes left running"
        assert _leftovers() <= before, "sandbox cgroup or work directory left behind"
        assert sorted(os.listdir(trainer["home"])) == home_before, "files appeared in the trainer's home"
        assert res.isolation.startswith("bwrap") or limits.isolation == "none", res.isolation
        return res

    return run


# ----------------------------------------------------------------------------- 1. privileges, mounts, host files

def test_sandbox_cannot_unmount_remount_or_reach_the_trainers_files(contained, trainer):
    secret = os.path.join(trainer["home"], "secret.txt")
    owned = os.path.join(trainer["home"], "owned.txt")
    code = ("import ctypes, os\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "changed = []\n"
            "for target in [b'/', b'/proc', b'/work', b'/usr', b'/tmp']:\n"
            "    if libc.umount2(target, 2) == 0:\n"
            "        changed.append(target.decode())\n"
            "if libc.mount(None, b'/', None, 32 | 4096, None) == 0:\n"  # MS_REMOUNT|MS_BIND, read-write
            "    changed.append('remount /')\n"
            "if libc.mount(b'none', b'/mnt', b'tmpfs', 0, None) == 0 or libc.setuid(0) == 0:\n"
            "    changed.append('privileged call')\n"
            "leaked, written = [], []\n"
            f"for path in [{secret!r}, '/etc/shadow', '/root/.bashrc', '/proc/1/root' + {secret!r}]:\n"
            "    try:\n"
            "        leaked.append(open(path).read()[:20])\n"
            "    except OSError:\n"
            "        pass\n"
            f"for path in [{owned!r}, {trainer['home']!r} + '/new.txt', '/usr/x', '/x']:\n"
            "    try:\n"
            "        open(path, 'w').write('pwned')\n"
            "        written.append(path)\n"
            "    except OSError:\n"
            "        pass\n"
            "top = sorted(os.listdir('/'))\n"
            "caps = [ln for ln in open('/proc/self/status') if ln.startswith('CapEff')][0].split()[1]\n")
    res = contained(code, ["assert changed == [], changed", "assert leaked == [], leaked",
                           "assert written == [], written", "assert set(top) <= {'dev', 'lib', 'lib64', 'proc', "
                           "'tmp', 'usr', 'work', 'root', 'bin', 'etc', 'opt'}, top",
                           "assert int(caps, 16) == 0, caps"])
    assert res.status == "ok", res
    assert not os.path.exists(owned)


def test_sandbox_uid_is_not_root_outside(contained, trainer):
    res = contained("import os\nuid = os.getuid()\n", ["assert uid != 0, uid"])
    assert res.status == "ok", res
    if trainer["kind"] == "root":  # a fresh unprivileged uid per run, from the sandbox's own range
        import re

        from riskpo_mm.rewards.sandbox import _UID_BASE

        uid = int(re.search(r"\buid (\d+)", res.isolation).group(1))
        assert uid >= _UID_BASE


# ----------------------------------------------------------------------------- 2. the launcher reads only pipes

@pytest.mark.parametrize("trick", ["symlink", "fifo", "devzero"])
def test_symlinked_fifo_or_dev_zero_output_never_leaks_hangs_or_grows(contained, trick):
    make = {"symlink": "os.symlink('/etc/shadow', name)", "fifo": "os.mkfifo(name)",
            "devzero": "os.symlink('/dev/zero', name)"}[trick]
    code = ("import os, sys\n"
            "for d in ('.', '/tmp', '/work'):\n"
            "    for base in ('.stderr', '.stdout', '.case_out', 'stderr', 'out'):\n"
            "        name = os.path.join(d, base)\n"
            "        try:\n"
            f"            {make}\n"
            "        except OSError:\n"
            "            pass\n"
            "zero = os.open('/dev/zero', os.O_RDONLY)\n"
            "os.dup2(zero, 2)\n"
            "print('done', file=sys.stderr)\n")
    res = contained(code, ["assert True"])
    assert "root:" not in res.stderr_tail and len(res.stderr_tail) <= LIMITS.stderr_tail
    stdio = contained(code.replace("os.dup2(zero, 2)", "os.sendfile(1, zero, None, 64 << 20)"),
                      {"inputs": ["x"], "outputs": ["y"]})
    assert stdio.passed == 0 and "root:" not in stdio.stderr_tail


# ----------------------------------------------------------------------------- 3. memory for the whole sandbox

def test_memory_is_bounded_for_the_whole_sandbox_not_per_process(contained, trainer):
    code = ("import os, select, time\n"
            "r, w = os.pipe()\n"
            "for _ in range(32):\n"
            "    try:\n"
            "        if os.fork() == 0:\n"
            "            try:\n"
            "                block = bytearray(90 << 20)\n"
            "                os.write(w, b'x')\n"
            "                time.sleep(30)\n"
            "            finally:\n"
            "                os._exit(0)\n"
            "    except OSError:\n"
            "        break\n"
            "held, end = 0, time.monotonic() + 0.8\n"
            "while time.monotonic() < end:\n"
            "    if select.select([r], [], [], 0.05)[0]:\n"
            "        held += len(os.read(r, 64))\n")
    limits = SandboxLimits(timeout_s=4.0, memory_mb=128, nproc=40)
    res = contained(code, ["assert held >= 0"], limits=limits)
    if "cgroup" in res.isolation and "no cgroup" not in res.isolation:
        held_ok = ["assert held * 90 <= 128 + 48, held"]
    else:  # the documented bound without a cgroup: nproc x memory_mb
        assert "nproc x memory_mb" in res.not_covered
        held_ok = ["assert held * 90 <= 40 * 128, held"]
    res = contained(code, held_ok, limits=limits)
    assert res.status in ("ok", "memory"), res


def test_fork_and_thread_bombs_hit_the_process_cap(contained):
    code = ("import os, threading, time\n"
            "n = 0\n"
            "for _ in range(500):\n"
            "    try:\n"
            "        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
            "        n += 1\n"
            "    except RuntimeError:\n"
            "        break\n")
    res = contained(code, ["assert n < 100, n"])
    assert res.status == "ok", res
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    assert contained(bomb).status in ("timeout", "killed")


# ----------------------------------------------------------------------------- 4. sockets

def test_host_unix_abstract_and_ip_sockets_are_unreachable(contained, trainer):
    path = os.path.join(tempfile.gettempdir(), f"riskpo-rt-{uuid.uuid4().hex[:8]}.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(path)
    os.chmod(path, 0o777)
    unix.listen(1)
    unix.setblocking(False)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(b"\0riskpo-rt-" + uuid.uuid4().hex[:8].encode())
    abstract.listen(1)
    abstract.setblocking(False)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1)
    tcp.setblocking(False)
    code = ("import glob, socket\n"
            "reached = []\n"
            f"targets = [{path!r}, {abstract.getsockname()!r}] + glob.glob('/tmp/*') + glob.glob('/run/**', recursive=True)\n"
            "for t in targets:\n"
            "    s = socket.socket(socket.AF_UNIX)\n"
            "    try:\n"
            "        s.connect(t)\n"
            "        reached.append(str(t))\n"
            "    except (OSError, TypeError):\n"
            "        pass\n"
            f"for fam, addr in [(socket.AF_INET, ('127.0.0.1', {tcp.getsockname()[1]})), "
            "(socket.AF_INET, ('1.1.1.1', 53)), (socket.AF_INET6, ('::1', 22))]:\n"
            "    try:\n"
            "        socket.socket(fam).connect(addr)\n"
            "        reached.append(str(addr))\n"
            "    except OSError:\n"
            "        pass\n"
            "try:\n"
            "    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))\n"
            "    reached.append('udp')\n"
            "except OSError:\n"
            "    pass\n"
            "try:\n"
            "    socket.getaddrinfo('example.com', 80)\n"
            "    reached.append('dns')\n"
            "except OSError:\n"
            "    pass\n")
    try:
        res = contained(code, ["assert reached == [], reached"])
        for s in (unix, abstract, tcp):
            with pytest.raises(BlockingIOError):
                s.accept()
    finally:
        for s in (unix, abstract, tcp):
            s.close()
        os.unlink(path)
    assert res.status == "ok", res


# ----------------------------------------------------------------------------- 5. forged passes

IMPOSSIBLE = ["assert f(1) == 2", "assert f(1) == 3", "assert f(1)", "assert not f(1)"]
IMPOSSIBLE_CALLS = {"inputs": ["1", "1"], "outputs": ["2", "3"], "fn_name": "f"}


def test_always_equal_objects_score_zero(contained):
    code = ("class Any:\n"
            "    def __eq__(self, other):\n        return True\n"
            "    __ne__ = lambda self, other: False\n"
            "    __hash__ = lambda self: 0\n"
            "    __bool__ = lambda self: True\n"
            "class AnyInt(int):\n"
            "    __eq__ = lambda self, other: True\n"
            "    __hash__ = int.__hash__\n"
            "def f(x):\n    return Any()\n"
            "def g(x):\n    return [AnyInt(0)]\n")
    res = contained(code, IMPOSSIBLE)
    assert res.passed == 0 and not res.all_passed, res
    assert contained(code, IMPOSSIBLE_CALLS).passed == 0
    assert contained(code, ["assert g(1) == [2]", "assert g(1) == [3]"]).passed == 0


def test_replaced_builtins_and_patched_modules_do_not_reach_the_tests(contained):
    code = ("import builtins, math\n"
            "builtins.AssertionError = type('Nothing', (Exception,), {})\n"
            "builtins.len = lambda x: 2\n"
            "builtins.isinstance = lambda *a: True\n"
            "math.isclose = lambda *a, **k: True\n"
            "def f(x):\n    return 0\n")
    res = contained(code, ["assert math.isclose(f(1), 2)", "assert len([f(1)]) == 2",
                           "assert isinstance(f(1), str)", "assert f(1) == 3"])
    assert res.passed == 0, res


def test_frame_introspection_finds_no_expected_output_nor_a_reporting_function(contained):
    marker = f"EXPECTED-{uuid.uuid4().hex}"
    code = ("import gc, os, sys\n"
            "found = []\n"
            "frame = sys._getframe()\n"
            "while frame is not None:\n"
            "    found += [v for v in frame.f_locals.values() if isinstance(v, str) and 'EXPECTED-' in v]\n"
            "    for v in list(frame.f_locals.values()) + list(frame.f_globals.values()):\n"
            "        if callable(v) and getattr(v, '__name__', '') in ('send', 'send_value', 'report'):\n"
            "            for i in range(8):\n"
            "                try:\n"
            "                    v({'v': 'forged'})\n"
            "                except BaseException:\n"
            "                    pass\n"
            "    frame = frame.f_back\n"
            "for o in gc.get_objects():\n"
            "    if isinstance(o, dict):\n"
            "        found += [v for v in o.values() if isinstance(v, str) and 'EXPECTED-' in v]\n"
            "for fd in range(3, 16):\n"
            "    try:\n"
            "        os.write(fd, b'{\"v\": \"forged\"}\\n{\"defined\": true, \"names\": {}}\\n')\n"
            "    except OSError:\n"
            "        pass\n"
            "def f(*a):\n    return found[0] if found else 'forged'\n")
    res = contained(code, [f"assert f() == {marker!r}", f"assert f() == {marker + 'x'!r}"])
    assert res.passed == 0, res
    calls = contained(code, {"inputs": ["1"], "outputs": [json.dumps(marker)], "fn_name": "f"})
    assert calls.passed == 0, calls
    stdio = contained(code + "print(f())\n", {"inputs": ["1"], "outputs": [marker]})
    assert stdio.passed == 0, stdio


@pytest.mark.parametrize("exit_call", ["os._exit(0)", "sys.exit(0)", "os.kill(os.getpid(), 9)",
                                       "os.kill(1, 9)"])
def test_early_exit_never_counts_as_passed(contained, exit_call):
    code = f"import os, sys\ndef f(x):\n    {exit_call}\n"
    res = contained(code, ["assert f(1) == 2", "assert f(1) == 3"])
    assert res.passed == 0 and not res.all_passed, res
    res = contained(f"import os, sys\n{exit_call}\n", ["assert True"])
    assert not res.all_passed or exit_call == "os.kill(1, 9)", res  # the kernel ignores that one: nothing ended


# ----------------------------------------------------------------------------- what held before, still holding

def test_infinite_loop_and_ignored_sigterm_time_out(contained):
    res = contained("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n")
    assert res.status == "timeout" and res.passed == 0


def test_sleeping_child_that_outlives_the_parent_is_killed(contained):
    code = ("import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(60)\n"
            "    os._exit(0)\n")
    assert contained(code, ["assert 1 + 1 == 2"]).status == "ok"


def test_memory_bomb_reports_memory(contained):
    res = contained("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))\n")
    assert res.status == "memory"


def test_disk_fill_stays_in_the_capped_work_dir(contained):
    free_before = psutil.disk_usage(tempfile.gettempdir()).free
    code = ("i = 0\n"
            "try:\n"
            "    while True:\n"
            "        with open(f'fill{i}', 'wb') as f:\n"
            "            f.write(b'0' * (4 << 20))\n"
            "        i += 1\n"
            "except OSError:\n"
            "    pass\n")
    assert contained(code, ["assert i < 100"]).status == "ok"
    assert psutil.disk_usage(tempfile.gettempdir()).free > free_before - (64 << 20)


def test_output_flood_is_capped(contained):
    res = contained("while True:\n    print('x' * 10000)\n")
    assert res.status in ("error", "killed", "timeout") and len(res.stderr_tail) <= LIMITS.stderr_tail


def test_limits_cannot_be_raised_fds_exhausted_or_privileges_regained(contained):
    code = ("import os, resource, ctypes\n"
            "raised = []\n"
            "for lim in (resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_NOFILE, resource.RLIMIT_CPU):\n"
            "    try:\n"
            "        resource.setrlimit(lim, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
            "        raised.append(lim)\n"
            "    except (ValueError, OSError):\n"
            "        pass\n"
            "fds = []\n"
            "try:\n"
            "    while True:\n"
            "        fds.append(os.open('/dev/null', os.O_RDONLY))\n"
            "except OSError:\n"
            "    pass\n"
            "nfds = len(fds)\n"
            "for fd in fds:\n"
            "    os.close(fd)\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "nested = libc.unshare(0x10000000) == 0\n"  # CLONE_NEWUSER
            "setuid_files = [p for d in ('/usr', '/lib') for r, _, fs in os.walk(d) for p in "
            "(os.path.join(r, f) for f in fs) if os.path.isfile(p) and os.stat(p).st_mode & 0o6000]\n"
            "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n")
    res = contained(code, ["assert raised == [], raised", "assert nfds < 64, nfds", "assert not nested",
"assert setuid_files == [], setuid_files",
                           "assert len(pids) <= 3, pids"])
    assert res.status == "ok", res


def test_killing_the_parent_or_everything_fails(contained):
    me = os.getpid()
    code = ("import os, signal\n"
            f"for target in (os.getppid(), {me}, -1, 1):\n"
            "    try:\n"
            "        os.kill(target, signal.SIGKILL)\n"
            "    except OSError:\n"
            "        pass\n")
    contained(code)
    assert psutil.Process(me).is_running()


def test_recursion_bombs_are_contained(contained):
    res = contained("import sys\nsys.setrecursionlimit(10 ** 8)\ndef f(n):\n    return f(n + 1) + 1\nf(0)\n")
    assert res.status in ("killed", "error", "memory", "timeout")
    res = contained("def f(n):\n    return f(n + 1)\n", ["assert f(0) == 1"])
    assert res.status == "error" and res.passed == 0
