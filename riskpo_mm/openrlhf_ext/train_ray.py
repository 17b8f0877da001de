"""``python -m riskpo_mm.openrlhf_ext.train_ray``: OpenRLHF's Ray PPO launcher with RiskPO swapped in.

Every OpenRLHF 0.11.2 ``train_ppo_ray`` flag is accepted, plus ``--riskpo.*`` (see ``flags``).
OpenRLHF builds its parser and validates the flags inside ``if __name__ == "__main__":`` of
``openrlhf/cli/train_ppo_ray.py``; we run exactly that block (read from the installed file, not
copied), with two names bound by us: ``argparse``, whose ``ArgumentParser`` adds the ``--riskpo.*``
group before parsing, and ``train``, which receives the validated args instead of launching.
Then our own checks run and, for a launch, OpenRLHF's ``train(args)`` runs with
``RiskPOPPOTrainer`` and ``RiskPOPolicyModelActor`` in place of its trainer and policy actor.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import datetime
import functools
import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any

from riskpo_mm.openrlhf_ext.flags import (
    RayArgsError,
    add_riskpo_arguments,
    resolve_context_defaults,
    validate_riskpo_args,
)

OPENRLHF_CLI = "openrlhf.cli.train_ppo_ray"
PROG = "python -m riskpo_mm.openrlhf_ext.train_ray"


class _RiskPOArgumentParser(argparse.ArgumentParser):
    """OpenRLHF's parser plus ``--riskpo.*``; parses ``argv``; errors raise in library mode."""

    def __init__(self, *args: Any, argv: Sequence[str], raise_errors: bool, **kwargs: Any) -> None:
        kwargs.setdefault("prog", PROG)
        super().__init__(*args, **kwargs)
        self._argv = list(argv)
        self._raise_errors = raise_errors

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        add_riskpo_arguments(self)
        ns = super().parse_args(self._argv if args is None else args, namespace)
        resolve_context_defaults(ns, self.error)
        return ns

    def error(self, message: str):  # type: ignore[override]
        if self._raise_errors:
            raise RayArgsError(message)
        super().error(message)


@functools.lru_cache(maxsize=1)
def _openrlhf_main_block() -> types.CodeType:
    """The body of ``if __name__ == "__main__":`` in OpenRLHF's train_ppo_ray.py, compiled."""
    spec = importlib.util.find_spec(OPENRLHF_CLI)
    if spec is None or not spec.origin:
        raise RuntimeError(f"{OPENRLHF_CLI} not found: install openrlhf==0.11.2")
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=spec.origin)
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators)
    ]
    if len(blocks) != 1:
        raise RuntimeError(f"{spec.origin}: expected one `if __name__ == '__main__':` block, found {len(blocks)}")
    body = ast.Module(body=blocks[0].body, type_ignores=[])
    loads, stores = set(), set()
    for node in ast.walk(body):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else stores).add(node.id)
        elif isinstance(node, ast.alias):
            stores.add((node.asname or node.name).split(".")[0])
    unknown = loads - stores - set(dir(builtins)) - {"argparse", "datetime", "train"}
    if unknown:
        raise RuntimeError(
            f"{spec.origin}: its main block uses module globals {sorted(unknown)} that riskpo_mm does not provide; "
            "riskpo_mm supports openrlhf==0.11.2"
        )
    return compile(body, spec.origin, "exec")


def parse_ray_args(argv: Sequence[str], *, exit_on_error: bool = False) -> Any:
    """Run OpenRLHF's real parser and validation plus ours on ``argv``; launch nothing.

    Returns OpenRLHF's hierarchized namespace (``args.actor.*``, ..., ``args.riskpo.*``). Bad flags
    raise `RayArgsError` with the message (or, with ``exit_on_error``, print usage and exit 2).
    """
    captured: list[Any] = []
    parser_cls = functools.partial(_RiskPOArgumentParser, argv=argv, raise_errors=not exit_on_error)
    argparse_shim = types.SimpleNamespace(**{**vars(argparse), "ArgumentParser": parser_cls})
    namespace = {
        "__name__": "__main__",
        "__builtins__": builtins,
        "argparse": argparse_shim,
        "datetime": datetime.datetime,
        "train": captured.append,
    }
    main_block = _openrlhf_main_block()
    try:
        try:
            exec(main_block, namespace)  # parses and validates; `train` only captures
        except (AttributeError, TypeError, ValueError) as err:
            if isinstance(err, RayArgsError):
                raise
            raise RayArgsError(f"OpenRLHF's flag validation failed ({type(err).__name__}: {err})") from None
        if not captured:
            raise RayArgsError("OpenRLHF's train_ppo_ray main block returned without calling train(args)")
        args = captured[0]
        validate_riskpo_args(args)
    except (AssertionError, RayArgsError) as err:
        message = str(err) or f"OpenRLHF rejected the flags ({type(err).__name__})"
        if exit_on_error:
            print(f"{PROG}: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None
        raise RayArgsError(message) from None
    return args


@contextlib.contextmanager
def riskpo_ray_classes(param_dtype: str = "bf16") -> Iterator[types.ModuleType]:
    """Yield OpenRLHF's train_ppo_ray module with its trainer, policy actor and rollout actor
    swapped for ours (the rollout engines run in the actor's ``param_dtype``).

    Only this (driver) process sees the swap: Ray workers receive our classes by reference and
    import them from riskpo_mm.
    """
    from riskpo_mm.openrlhf_ext import compat

    compat.install()
    cli = importlib.import_module(OPENRLHF_CLI)
    ppo_trainer = importlib.import_module("openrlhf.trainer.ppo_trainer")
    vllm_engine = importlib.import_module("openrlhf.trainer.ray.vllm_engine")
    from riskpo_mm.openrlhf_ext.actor import RiskPOPolicyModelActor
    from riskpo_mm.openrlhf_ext.trainer import RiskPOPPOTrainer
    from riskpo_mm.openrlhf_ext.vllm_ext import rollout_actor_class

    rollout_actor = rollout_actor_class(param_dtype)
    saved = (cli.PolicyModelActor, ppo_trainer.PPOTrainer, vllm_engine.RolloutRayActor)
    cli.PolicyModelActor, ppo_trainer.PPOTrainer = RiskPOPolicyModelActor, RiskPOPPOTrainer
    vllm_engine.RolloutRayActor = rollout_actor
    try:
        yield cli
    finally:
        cli.PolicyModelActor, ppo_trainer.PPOTrainer, vllm_engine.RolloutRayActor = saved


def launch(args: Any) -> None:
    """OpenRLHF's ``train(args)`` with the RiskPO trainer and policy actor."""
    if args.ds.param_dtype == "fp32" and args.algo.kl.init_coef > 0:
        raise RayArgsError("--ds.param_dtype fp32 with a KL term (--algo.kl.init_coef > 0): OpenRLHF's reference "
                           "model actor loads only bf16/fp16 on the Ray engine; use bf16 or drop the KL term")
    with riskpo_ray_classes(args.ds.param_dtype) as cli:
        cli.train(args)


def main(argv: list[str] | None = None) -> int:
    args = parse_ray_args(sys.argv[1:] if argv is None else argv, exit_on_error=True)
    launch(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
