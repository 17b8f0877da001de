"""User tasks named in the config: ``reward.functions: {my_task: "path/to/file.py:obj"}``.

``obj`` is a `riskpo_mm.tasks.TaskSpec` (grader, prompt instruction, required record fields,
default weights, SFT target) or a bare grader ``fn(record, response) -> GradeOutcome`` (or a float
accuracy in [0, 1]); it defines task ``my_task`` on both engines: the local engine registers it before loading data; every label of a Ray run
carries the mapping, and the reward function registers it once per process before grading.
The file is imported by path (the same file on every node: give a path all nodes can read).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any, Mapping

from riskpo_mm.tasks import TaskSpec

_loaded: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


class UserFunctionError(ValueError):
    """A ``reward.functions`` entry that cannot be loaded; the message names the task and the file."""



def load_function(task: str, spec: str) -> Any:
    """The grader function or `TaskSpec` named by ``"path/to/file.py:obj"`` (imported once per process and path)."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py") or not name:
        raise UserFunctionError(f"reward.functions.{task}: expected 'path/to/file.py:function', got {spec!r}")
    path = os.path.abspath(path)
    key = (path, name)
    with _lock:
        if key not in _loaded:
            if not os.path.isfile(path):
                raise UserFunctionError(f"reward.functions.{task}: file not found: {path}")
            module_spec = importlib.util.spec_from_file_location(f"riskpo_user_reward_{len(_loaded)}", path)
            module = importlib.util.module_from_spec(module_spec)
            try:
                module_spec.loader.exec_module(module)
            except Exception as err:
                raise UserFunctionError(f"reward.functions.{task}: importing {path} failed: {type(err).__name__}: {err}") from None
            fn = getattr(module, name, None)
            if not (callable(fn) or isinstance(fn, TaskSpec)):
                raise UserFunctionError(f"reward.functions.{task}: {path} has no function or TaskSpec {name!r}")
            _loaded[key] = fn
        fn = _loaded[key]
    if isinstance(fn, TaskSpec) and fn.name != task:
        raise UserFunctionError(f"reward.functions.{task}: {path}:{name} is the TaskSpec of task {fn.name!r}, "
                                f"not {task!r}")
    return fn


def register_functions(functions: Mapping[str, str]) -> list[str]:
    """Register every ``task: "file.py:fn"`` of the mapping with the default router; returns the tasks."""
    from . import register_task

    for task, spec in functions.items():
        obj = load_function(task, spec)
        register_task(obj if isinstance(obj, TaskSpec) else TaskSpec(task, obj))
    return sorted(functions)
