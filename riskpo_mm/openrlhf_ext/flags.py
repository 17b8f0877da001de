"""``--riskpo.*`` flags on top of OpenRLHF's ``train_ppo_ray`` parser, and their validation.

The flags mirror `riskpo_mm.algo.RiskPOConfig` (``--riskpo.alpha``, ``--riskpo.bundle_size``, ...;
unset fields take the value of ``--riskpo.preset``), plus the estimator; each flag's help is the
field's description (the config key's, for flags that carry one) plus where its default comes from. The policy loss is
OpenRLHF's own ``PolicyLoss`` (``--actor.policy_loss_type``, ``--actor.eps_clip_low_high``, ...).
After OpenRLHF's ``hierarchize`` they live under ``args.riskpo``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin, get_type_hints

from riskpo_mm.algo import RiskPOConfig, resolve_estimator
from riskpo_mm.algo.registry import takes_riskpo_options
from riskpo_mm.openrlhf_ext.dtype import PARAM_DTYPES

GROUP_TITLE = "RiskPO (riskpo_mm)"
# OpenRLHF flags whose defaults depend on whether a riskpo_mm estimator is active.
_UNSET = argparse.Namespace(unset=True)
_CONTEXT_DEFAULTS = ("algo.advantage.estimator", "algo.kl.init_coef")


class RayArgsError(ValueError):
    """A flag combination that OpenRLHF's or our validation rejects."""


def config_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(RiskPOConfig) if f.init]


def _value(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def preset_note(name: str) -> str:
    """Where ``--riskpo.<name>``'s default comes from: the value of each preset."""
    default = getattr(RiskPOConfig(), name)
    changed = RiskPOConfig.preset_overrides(name)
    if not changed:
        return f"(default: from --riskpo.preset; {_value(default)} in every preset)"
    values = ", ".join(f"{p}: {_value(v)}" for p, v in {"riskpo": default, **changed}.items())
    return f"(default: from --riskpo.preset; {values}; the other presets: {_value(default)})" \
        if len(changed) + 1 < len(RiskPOConfig.PRESETS) else f"(default: from --riskpo.preset; {values})"


def field_help(name: str) -> str:
    """``--riskpo.<name>``'s help: the RiskPOConfig field's description, then the preset note."""
    field = next(f for f in config_fields() if f.name == name)
    return f"{field.metadata['description']} {preset_note(name)}"


def config_key_help(key: str, extra: str = "") -> str:
    """The help of a flag that carries riskpo-mm config key `key`: that key's description (and `extra`)."""
    from riskpo_mm.config import describe

    text = describe(key)
    if extra:
        text = f"{text.rstrip('.')}{extra}."
    return _escape(f"{text} (riskpo-mm config key {key})")


def _estimator_name(value: str) -> str:
    """``--riskpo.estimator``: off, a registered name or a file spec (loaded here, so errors surface at parse time)."""
    if value == "off":
        return value
    try:
        resolve_estimator(value)
    except (ValueError, TypeError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def _json_object(value: str) -> str:
    """A JSON object, checked here and kept as text (OpenRLHF's hierarchize would turn a dict into a namespace)."""
    try:
        out = json.loads(value)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {value!r}: {err}") from None
    if not isinstance(out, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {value!r}")
    return value


def _escape(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help strings with %


def add_riskpo_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--riskpo.*`` group (idempotent) and context-dependent defaults of OpenRLHF flags."""
    if any(g.title == GROUP_TITLE for g in parser._action_groups):
        return
    group = parser.add_argument_group(GROUP_TITLE, "RiskPO estimator and loss; see docs/method.md")
    group.add_argument(
        "--riskpo.estimator",
        default="riskpo",
        type=_estimator_name,
        help=config_key_help("algorithm.estimator", "; off = OpenRLHF's own --algo.advantage.estimator"),
    )
    group.add_argument("--riskpo.estimator_options", type=_json_object, default=None,
                       help=config_key_help("algorithm.options", " (a JSON object)"))
    group.add_argument("--riskpo.preset", default="riskpo", choices=RiskPOConfig.preset_names(),
                       help=config_key_help("algorithm.preset"))
    group.add_argument("--riskpo.seed", type=int, default=None, help="estimator RNG seed (default: --train.seed)")
    group.add_argument("--riskpo.reward_clip", type=float, nargs=2, default=None,
                       help=config_key_help("reward.clip_range"))
    group.add_argument("--riskpo.overlong_buffer", type=int, default=None,
                       help=config_key_help("reward.overlong_buffer_len"))
    group.add_argument("--riskpo.overlong_factor", type=float, default=1.0,
                       help=config_key_help("reward.overlong_penalty_factor"))
    group.add_argument("--riskpo.eval_k", type=int, nargs="+", default=None, help=config_key_help("eval.k"))
    group.add_argument("--riskpo.eval_max_new_tokens", type=int, default=None,
                       help=config_key_help("eval.max_new_tokens"))
    group.add_argument("--riskpo.metrics_file", default=None,
                       help="append every step's metrics to this JSONL file (riskpo-mm's metrics.jsonl)")
    hints = get_type_hints(RiskPOConfig)
    for f in config_fields():
        hint = hints[f.name]
        kwargs: dict[str, Any] = {"default": None, "help": _escape(field_help(f.name))}
        if get_origin(hint) is Literal:
            kwargs["choices"] = get_args(hint)
        elif get_origin(hint) is tuple:
            kwargs.update(type=float, nargs="+")
        elif hint in (int, float):
            kwargs["type"] = hint
        else:
            kwargs["type"] = str
        group.add_argument(f"--riskpo.{f.name}", **kwargs)
    parser.set_defaults(**{name: _UNSET for name in _CONTEXT_DEFAULTS})
    for action in parser._actions:  # float32 training (riskpo_mm.openrlhf_ext.dtype)
        if action.dest == "ds.param_dtype" and action.choices is not None:
            action.choices = list(dict.fromkeys([*action.choices, *PARAM_DTYPES]))


def resolve_context_defaults(ns: argparse.Namespace, error) -> None:
    """Fill OpenRLHF flags left unset: with a riskpo_mm estimator, no critic (estimator 'reinforce',
    which only selects OpenRLHF's critic-free path) and no KL by default; otherwise OpenRLHF's defaults."""
    active = getattr(ns, "riskpo.estimator") != "off"
    given_estimator = getattr(ns, "algo.advantage.estimator")
    if given_estimator is _UNSET:
        setattr(ns, "algo.advantage.estimator", "reinforce" if active else "gae")
    elif active:
        error(
            f"--algo.advantage.estimator {given_estimator} conflicts with --riskpo.estimator "
            f"{getattr(ns, 'riskpo.estimator')}: advantages come from the riskpo_mm estimator; pass "
            "--riskpo.estimator off to use OpenRLHF's estimators"
        )
    if getattr(ns, "algo.kl.init_coef") is _UNSET:
        setattr(ns, "algo.kl.init_coef", 0.0 if active else 0.01)
    if getattr(ns, "actor.entropy_coef") is None:
        setattr(ns, "actor.entropy_coef", 0.0)  # 0 = compute and log the true token entropy, no bonus


def riskpo_config(args: Any) -> RiskPOConfig:
    """``RiskPOConfig`` from ``--riskpo.preset`` with every explicitly given ``--riskpo.<field>`` on top."""
    overrides = {}
    for f in config_fields():
        value = getattr(args.riskpo, f.name)
        if value is not None:
            overrides[f.name] = tuple(value) if isinstance(value, list) else value
    try:
        return RiskPOConfig.preset(args.riskpo.preset, **overrides)
    except ValueError as err:
        raise RayArgsError(f"--riskpo.*: {str(err).replace('RiskPOConfig.', '--riskpo.')}") from None


def validate_riskpo_args(args: Any) -> None:
    """Checks on the hierarchized args after OpenRLHF's own; raises `RayArgsError` naming the flags."""
    r = args.riskpo
    if args.data.max_images_per_prompt > 0 and args.train.dynamic_batch_enable:
        raise RayArgsError(
            "--train.dynamic_batch_enable with --data.max_images_per_prompt > 0: dynamic batching misaligns image "
            "tokens of vision-language models in OpenRLHF 0.11.2; leave it off"
        )
    if r.estimator == "off":
        return
    config = riskpo_config(args)
    n = args.rollout.n_samples_per_prompt
    if n < 2:
        raise RayArgsError(f"--riskpo.estimator {r.estimator} needs --rollout.n_samples_per_prompt >= 2, got {n}")
    if takes_riskpo_options(r.estimator) and args.rollout.batch_size % config.bundle_size:
        raise RayArgsError(
            f"--rollout.batch_size {args.rollout.batch_size} is not a multiple of the bundle size "
            f"{config.bundle_size} (--riskpo.bundle_size / --riskpo.preset {r.preset})"
        )
    if not args.data.label_key:
        raise RayArgsError(
            "--data.label_key is required with --riskpo.estimator: each sample's label carries its prompt uid "
            "(JSON {\"uid\", \"task\", ...}; riskpo_mm.openrlhf_ext.data writes such datasets)"
        )
    if args.train.async_enable:
        raise RayArgsError("--train.async_enable is not supported with --riskpo.estimator; use the synchronous trainer")
    if args.algo.kl.init_coef > 0 and not args.algo.kl.use_loss:
        raise RayArgsError(
            "--algo.kl.init_coef > 0 without --algo.kl.use_loss puts a per-token KL into the reward, which "
            "bundle advantages do not use; add --algo.kl.use_loss"
        )


def to_openrlhf_args(flags: Mapping[str, Any]) -> list[str]:
    """``{"actor.model_name_or_path": "m", "train.colocate_all": True, "riskpo.alpha": 0.2}`` -> argv.

    True -> bare flag, False/None -> omitted, list/tuple -> one flag with several values.
    """
    argv: list[str] = []
    for key, value in flags.items():
        flag = key if key.startswith("--") else f"--{key}"
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, *(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv
