"""One cgroup per sandboxed run: total memory and process count of the whole sandbox.

cgroup v1 (``memory`` and ``pids`` hierarchies, writable as root) or v2 (a
delegated subtree with ``memory`` and ``pids`` enabled). The group is created
under the trainer's own group (so the trainer's limits still apply above it),
joined by the sandbox launcher's child before it execs bubblewrap, and swept
(every task SIGKILLed, then removed) by the trainer after the run. Only paths
the trainer chose are ever touched here; nothing the sandboxed code controls.
"""

from __future__ import annotations

import itertools
import os
import signal
import time

_ROOT = "/sys/fs/cgroup"
_counter = itertools.count()


def _own_path(controller: str) -> str | None:
    """This process's cgroup path for a v1 controller ("memory", "pids") or v2 ("")."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if ctrls.split(",") == [controller] or (controller == "" and ctrls == ""):
                    return path
    except OSError:
        return None
    return None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _parent_dir(mount: str, controller: str) -> str:
    own = _own_path(controller) or "/"
    cand = os.path.join(mount, own.lstrip("/"))
    return cand if os.path.isdir(cand) else mount


class RunCgroup:
    """The cgroup(s) of one run; ``procs`` are the files a process writes its pid to to join."""

    def __init__(self, version: int, dirs: list[str], memory_bytes: int, pids: int) -> None:
        self.version, self.dirs, self.memory_bytes, self.pids = version, dirs, memory_bytes, pids
        self.procs = [os.path.join(d, "cgroup.procs") for d in dirs]

    @property
    def description(self) -> str:
        return f"cgroup v{self.version}: memory {self.memory_bytes >> 20} MB, pids {self.pids} for the whole sandbox"

    @classmethod
    def create(cls, memory_bytes: int, pids: int, parent: str | None = None) -> "RunCgroup | None":
        """A fresh limited group, or None where this process may not create one."""
        name = f"riskpo-sbx-{os.getpid()}-{next(_counter)}"
        if parent:
            if os.path.exists(os.path.join(parent, "cgroup.controllers")):
                return cls._create_v2(os.path.join(parent, name), memory_bytes, pids)
            return None
        v1_mem, v1_pids = os.path.join(_ROOT, "memory"), os.path.join(_ROOT, "pids")
        if os.path.exists(os.path.join(v1_mem, "memory.limit_in_bytes")) and \
                os.path.exists(os.path.join(v1_pids, "cgroup.procs")):
            dirs = [os.path.join(_parent_dir(v1_mem, "memory"), name),
                    os.path.join(_parent_dir(v1_pids, "pids"), name)]
            return cls._create_v1(dirs, memory_bytes, pids)
        for mount in (_ROOT, os.path.join(_ROOT, "unified")):
            if os.path.exists(os.path.join(mount, "cgroup.controllers")):
                made = cls._create_v2(os.path.join(_parent_dir(mount, ""), name), memory_bytes, pids)
                if made is not None:
                    return made
        return None

    @classmethod
    def _create_v1(cls, dirs: list[str], memory_bytes: int, pids: int) -> "RunCgroup | None":
        made: list[str] = []
        try:
            for d in dirs:
                os.mkdir(d, 0o755)
                made.append(d)
            _write(os.path.join(dirs[0], "memory.limit_in_bytes"), str(memory_bytes))
            try:  # no swap either, where swap accounting exists
                _write(os.path.join(dirs[0], "memory.memsw.limit_in_bytes"), str(memory_bytes))
            except OSError:
                pass
            _write(os.path.join(dirs[1], "pids.max"), str(pids))
        except OSError:
            for d in made:
                _rmdir(d)
            return None
        return cls(1, dirs, memory_bytes, pids)

    @classmethod
    def _create_v2(cls, d: str, memory_bytes: int, pids: int) -> "RunCgroup | None":
        try:
            os.mkdir(d, 0o755)
        except OSError:
            return None
        try:
            _write(os.path.join(d, "memory.max"), str(memory_bytes))
            _write(os.path.join(d, "pids.max"), str(pids))
            try:
                _write(os.path.join(d, "memory.swap.max"), "0")
            except OSError:
                pass
        except OSError:  # memory/pids not delegated to this subtree
            _rmdir(d)
            return None
        return cls(2, [d], memory_bytes, pids)

    def oom_kills(self) -> int:
        """How many processes the kernel killed for exceeding the group's memory."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in _read(os.path.join(self.dirs[0], name)).splitlines():
                key, _, val = line.partition(" ")
                if key == "oom_kill":
                    return int(val)
        except (OSError, ValueError):
            return 0
        return 0

    def destroy(self) -> None:
        """SIGKILL every task left in the group, then remove it (never raises)."""
        if self.version == 2:
            try:
                _write(os.path.join(self.dirs[0], "cgroup.kill"), "1")
            except OSError:
                pass
        for d in self.dirs:
            for _ in range(200):
                try:
                    pids = [int(p) for p in _read(os.path.join(d, "cgroup.procs")).split()]
                except (OSError, ValueError):
                    break
                if not pids and _rmdir(d):
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.005)


def _rmdir(d: str) -> bool:
    try:
        os.rmdir(d)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False
