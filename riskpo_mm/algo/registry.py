"""Estimators by name, and the interface every estimator implements.

Built in: "riskpo", "grpo", "dr_grpo", "dapo". A new estimator is one file with a class that
satisfies `Estimator`, plus a registration:

- in the package: one line in `ESTIMATORS` below;
- outside it, on both engines: name the class in the config, ``algorithm.estimator:
  "path/to/file.py:MyEstimator"`` (the file is imported by path in every process that builds the
  estimator: the local engine, and the Ray controller), with its options in ``algorithm.options``;
- outside it, local engine only: `register_estimator("mine", MyEstimator)` before the run starts.

An estimator's options are a dataclass named by its ``Options`` attribute (None: it takes none);
`build_estimator` builds them from a dict and rejects unknown keys, naming them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import threading
from typing import Any, ClassVar, Mapping, Optional, Protocol, Sequence, runtime_checkable

from torch import Tensor

from riskpo_mm.algo.config import RiskPOConfig
from riskpo_mm.algo.estimator import RiskPOEstimator
from riskpo_mm.algo.group import DAPOEstimator, DrGRPOEstimator, GRPOEstimator


@runtime_checkable
class Estimator(Protocol):
    """What `AdvantageStep` calls once per RL step.

    ``advantages(rewards [P, n], groups=None, mask=None) -> [P, n]``: ``groups`` holds the P task
    labels, ``mask`` the valid responses (None: all). After each call ``metrics`` holds floats to log
    (under ``<estimator>/...``) and ``keep`` is a ``[P]`` bool tensor of the prompts to train on, or
    None for all of them. ``state_dict`` / ``load_state_dict`` carry whatever the next call depends
    on (trackers, RNG) through checkpoints.
    """

    Options: ClassVar[Optional[type]]
    metrics: dict[str, float]
    keep: Optional[Tensor]

    def __init__(self, options: Any, seed: int = 0) -> None: ...

    def advantages(self, rewards: Tensor, groups: Optional[Sequence[str]] = None, mask: Optional[Tensor] = None) -> Tensor: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


ESTIMATORS: dict[str, type] = {
    "riskpo": RiskPOEstimator,
    "grpo": GRPOEstimator,
    "dr_grpo": DrGRPOEstimator,
    "dapo": DAPOEstimator,
}
_lock = threading.Lock()


def register_estimator(name: str, cls: type) -> None:
    """Add (or replace) the estimator called `name` in this process."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_estimator: name must be a non-empty string, got {name!r}")
    _check_class(cls, name)
    with _lock:
        ESTIMATORS[name] = cls


def is_file_spec(name: str) -> bool:
    """True for ``"path/to/file.py:ClassName"``."""
    path, sep, attr = name.rpartition(":")
    return bool(sep and path.endswith(".py") and attr)


def resolve_estimator(name: str) -> type:
    """The class of a registered name or of a ``"path/to/file.py:ClassName"`` spec (imported once)."""
    if name in ESTIMATORS:
        return ESTIMATORS[name]
    if not is_file_spec(name):
        raise ValueError(f"unknown estimator {name!r}; allowed: {', '.join(ESTIMATORS)} or 'path/to/file.py:ClassName'")
    path, _, attr = name.rpartition(":")
    path = os.path.abspath(path)
    key = f"{path}:{attr}"
    with _lock:
        if key in ESTIMATORS:
            return ESTIMATORS[key]
        if not os.path.isfile(path):
            raise ValueError(f"estimator {name!r}: file not found: {path}")
        spec = importlib.util.spec_from_file_location(f"riskpo_user_estimator_{len(ESTIMATORS)}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            raise ValueError(f"estimator {name!r}: importing {path} failed: {type(err).__name__}: {err}") from None
        cls = getattr(module, attr, None)
        if not isinstance(cls, type):
            raise ValueError(f"estimator {name!r}: {path} has no class {attr!r}")
        _check_class(cls, name)
        ESTIMATORS[key] = cls
        return cls


def takes_riskpo_options(name: str) -> bool:
    """True for riskpo and its variants: their options are algorithm.riskpo (`--riskpo.<field>` on Ray)."""
    return getattr(resolve_estimator(name), "Options", None) is RiskPOConfig


def _check_class(cls: Any, name: str) -> None:
    missing = [m for m in ("advantages", "state_dict", "load_state_dict") if not callable(getattr(cls, m, None))]
    options = getattr(cls, "Options", None)
    if missing:
        raise TypeError(f"estimator {name!r}: {getattr(cls, '__name__', cls)!r} lacks {', '.join(missing)} "
                        "(see riskpo_mm.algo.Estimator)")
    if options is not None and not dataclasses.is_dataclass(options):
        raise TypeError(f"estimator {name!r}: Options must be a dataclass or None, got {options!r}")


def build_options(name: str, options: Any = None, key: str = "algorithm.options") -> Any:
    """The estimator's options from None (defaults), a dict or an `Options` instance."""
    cls = resolve_estimator(name)
    kind = getattr(cls, "Options", None)
    if kind is None:
        if options:
            got = sorted(options) if isinstance(options, Mapping) else type(options).__name__
            raise ValueError(f"{key}: estimator {name!r} takes no options, got {got}")
        return None
    if options is None:
        return kind()
    if isinstance(options, kind):
        return options
    if not isinstance(options, Mapping):
        raise ValueError(f"{key}: expected a mapping of {kind.__name__} fields, got {type(options).__name__}")
    fields = {f.name for f in dataclasses.fields(kind) if f.init}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"{key}: unknown option(s) {unknown} for estimator {name!r}; allowed: {sorted(fields)}")
    try:
        return kind(**options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{key}: {err}") from None


def build_estimator(name: str, options: Any = None, seed: int = 0) -> Estimator:
    """The estimator called `name` (a registered name or a file spec) with its options and RNG seed."""
    cls = resolve_estimator(name)
    return cls(build_options(name, options), seed=seed)
