"""User graders named in the config: ``reward.functions: {my_task: "path/to/file.py:fn"}``.

``fn(record, response) -> GradeOutcome`` (or a float accuracy in [0, 1]) grades task ``my_task``
on both engines: the local engine registers it before loading data; every label of a Ray run
carries the mapping, and the reward function registers it once per process before grading.
The file is imported by path (the same file on every node: give a path all nodes can read).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any, Callable, Mapping

from .result import GradeOutcome

_loaded: dict[tuple[str, str], Callable] = {}
_lock = threading.Lock()


class UserFunctionError(ValueError):
    """A ``reward.functions`` entry that cannot be loaded; the message names the task and the file."""


def _as_outcome(fn: Callable) -> Callable:
    def grader(record: Any, response: str) -> GradeOutcome:
        out = fn(record, response)
        if isinstance(out, GradeOutcome):
            return out
        value = float(out)
        return GradeOutcome(value, True, f"user function: {value:g}")

    grader.__name__ = getattr(fn, "__name__", "user_grader")
    return grader


def load_function(task: str, spec: str) -> Callable:
    """The callable of ``"path/to/file.py:fn"`` (imported once per process and path)."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py") or not name:
        raise UserFunctionError(f"reward.functions.{task}: expected 'path/to/file.py:function', got {spec!r}")
    path = os.path.abspath(path)
    key = (path, name)
    with _lock:
        if key in _loaded:
            return _loaded[key]
        if not os.path.isfile(path):
            raise UserFunctionError(f"reward.functions.{task}: file not found: {path}")
        module_spec = importlib.util.spec_from_file_location(f"riskpo_user_reward_{len(_loaded)}", path)
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
        except Exception as err:
            raise UserFunctionError(f"reward.functions.{task}: importing {path} failed: {type(err).__name__}: {err}") from None
        fn = getattr(module, name, None)
        if not callable(fn):
            raise UserFunctionError(f"reward.functions.{task}: {path} has no function {name!r}")
        _loaded[key] = fn
        return fn


def register_functions(functions: Mapping[str, str]) -> list[str]:
    """Register every ``task: "file.py:fn"`` of the mapping with the default router; returns the tasks."""
    from . import register_task

    for task, spec in functions.items():
        register_task(task, _as_outcome(load_function(task, spec)))
    return sorted(functions)
