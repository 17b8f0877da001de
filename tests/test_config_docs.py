"""The config's fields are its documentation: every key is described, `riskpo-mm config --explain`
prints them, and the Ray engine's `--riskpo.*` help is the same text."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml
from pydantic import BaseModel, Field

from riskpo_mm.algo import RiskPOConfig
from riskpo_mm.cli import main as cli
from riskpo_mm.config import RunConfig, load_config

CONFIGS = sorted(Path(__file__).resolve().parents[1].glob("configs/*/*.yaml"))


def _is_section(ann: Any) -> bool:
    return isinstance(ann, type) and (issubclass(ann, BaseModel) or dataclasses.is_dataclass(ann))


def _nested(ann: Any) -> list[tuple[Any, str]]:
    """(section class, key suffix) of the sections inside an annotation: Optional[S] -> S, list[S] ->
    S at `[*]`, dict[str, S] -> S at `.<task>`."""
    if _is_section(ann):
        return [(ann, "")]
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is list:
        return [(s, "[*]" + suffix) for s, suffix in _nested(args[0])]
    if origin is dict:
        return [(s, ".<task>" + suffix) for s, suffix in _nested(args[1])]
    if origin in (typing.Union, types.UnionType):
        return [found for a in args for found in _nested(a)]
    return []


def walk(model: Any, prefix: str = "") -> list[tuple[str, Optional[str], Any]]:
    """(dotted key, description, owning section class) of every field of `model`, recursively; pydantic
    sections and dataclasses (RiskPOConfig: the description is field metadata) alike."""
    if dataclasses.is_dataclass(model):
        hints = typing.get_type_hints(model)
        items = [(f.name, hints[f.name], f.metadata.get("description")) for f in dataclasses.fields(model) if f.init]
    else:
        items = [(name, f.annotation, f.description) for name, f in model.model_fields.items()]
    out = []
    for name, ann, description in items:
        key = f"{prefix}.{name}" if prefix else name
        out.append((key, description, model))
        for sub, suffix in _nested(ann):
            out += walk(sub, key + suffix)
    return out


def sections_of(model: Any) -> set[Any]:
    return {model} | {owner for _, _, owner in walk(model)}


def undocumented(model: Any) -> list[str]:
    return [key for key, description, _ in walk(model) if not (description or "").strip()]


KEYS = walk(RunConfig)


def test_the_walk_reaches_every_section_riskpo_included():
    keys = {k for k, _, _ in KEYS}
    for key in ("name", "model.tiny.family", "data.train[*].weight", "data.synthetic.levels", "rollout.backend",
                "algorithm.riskpo.credit", "algorithm.riskpo.track_grid", "algorithm.loss.is_correction",
                "reward.weights.<task>.format", "train.zero_stage", "sft.lr", "eval.k", "checkpoint.keep_last",
                "logging.wandb", "ray.extra_args"):
        assert key in keys, key
    riskpo = {f"algorithm.riskpo.{f.name}" for f in dataclasses.fields(RiskPOConfig) if f.init}
    assert riskpo <= keys
    assert len(KEYS) >= 100


def test_every_field_has_a_description():
    missing = undocumented(RunConfig)
    assert not missing, f"{len(missing)} config field(s) without a description: {', '.join(missing)}"


def test_every_section_class_says_what_it_is():
    bare = sorted(s.__name__ for s in sections_of(RunConfig) if not (s.__doc__ or "").strip())
    assert not bare, f"section classes without a docstring: {bare}"


def test_the_check_catches_a_missing_description():
    @dataclasses.dataclass
    class Inner:
        """A nested dataclass."""

        documented: int = dataclasses.field(default=0, metadata={"description": "has one"})
        bare: int = 0

    class Child(BaseModel):
        ok: int = Field(0, description="has one")
        blank: str = Field("", description="  ")

    class Parent(BaseModel):
        child: Optional[Child] = Field(None, description="a section")
        items: list[Child] = Field(default_factory=list, description="sources")
        inner: Inner = Field(default_factory=Inner)

    assert undocumented(Parent) == ["child.blank", "items[*].blank", "inner", "inner.bare"]


def _explain(capsys, *args: str) -> tuple[int, str, str]:
    code = cli(["config", "--explain", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_explain_prints_every_key_with_its_description(capsys):
    code, out, _ = _explain(capsys)
    assert code == 0
    lines = out.splitlines()
    flat = _squash(out)
    for key, description, _ in KEYS:
        assert any(line.startswith(f"  {key}  ") for line in lines), f"--explain does not list {key}"
        assert _squash(description or "") in flat, f"--explain does not print the description of {key}"
    for section in ("[top level]", "[model]", "[algorithm.riskpo]", "[algorithm.loss]", "[reward.weights.<task>]",
                    "[data.train[*]]", "[ray]"):
        assert section in out


def test_explain_one_key_shows_type_default_presets_and_description(capsys):
    code, out, _ = _explain(capsys, "algorithm.riskpo.credit")
    assert code == 0
    assert out.startswith("  algorithm.riskpo.credit  uniform | question_std | score | sum_mean  (default: uniform;")
    assert "riskpo_authors_hard_math: sum_mean" in out
    description = dataclasses.fields(RiskPOConfig)[[f.name for f in dataclasses.fields(RiskPOConfig)].index("credit")]
    assert _squash(description.metadata["description"]) in _squash(out)
    assert "algorithm.riskpo.alpha" not in out and "[" not in out.splitlines()[0][:3]


def test_explain_a_section_prints_only_that_section(capsys):
    code, out, _ = _explain(capsys, "algorithm.riskpo")
    assert code == 0
    for f in dataclasses.fields(RiskPOConfig):
        assert f"  algorithm.riskpo.{f.name}  " in out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert listed[0] == "algorithm.riskpo" and all(k.startswith("algorithm.riskpo.") for k in listed[1:]), listed
    code, out, _ = _explain(capsys, "reward.weights.math.accuracy")  # a mapping value's key
    assert code == 0 and out.startswith("  reward.weights.<task>.accuracy  float")


@pytest.mark.parametrize("key, suggestion", [("algorithm.riskpo.credt", "algorithm.riskpo.credit"),
                                             ("rollout.n_sample", "rollout.n_samples_per_prompt"),
                                             ("credt", "algorithm.riskpo.credit"),
                                             ("modle", "model")])
def test_unknown_key_exits_2_naming_it_with_a_suggestion(capsys, key, suggestion):
    code, out, err = _explain(capsys, key)
    assert code == 2 and not out
    assert f"unknown config key {key!r}" in err and f"did you mean {suggestion}" in err


def test_config_prints_the_resolved_config(capsys, tmp_path):
    code = cli(["config", "--config", str(CONFIGS[0]), "--set", "algorithm.riskpo.alpha=0.1"])
    out = capsys.readouterr().out
    assert code == 0
    path = tmp_path / "resolved.yaml"
    path.write_text(out)
    assert load_config(path) == load_config(CONFIGS[0], ["algorithm.riskpo.alpha=0.1"])
    assert yaml.safe_load(out)["algorithm"]["riskpo"]["alpha"] == 0.1
    assert cli(["config", "--config", str(CONFIGS[0]), "--set", "rollout.n_sample=3"]) == 2
    assert "did you mean rollout.n_samples_per_prompt" in capsys.readouterr().err


def _riskpo_help() -> dict[str, str]:
    from riskpo_mm.openrlhf_ext.flags import add_riskpo_arguments

    parser = argparse.ArgumentParser()
    add_riskpo_arguments(parser)
    return {a.dest: a.help.replace("%%", "%") for a in parser._actions if a.dest.startswith("riskpo.")}


def test_riskpo_flag_help_is_the_field_description_plus_the_preset_note():
    helps = _riskpo_help()
    for f in dataclasses.fields(RiskPOConfig):
        description = f.metadata["description"]
        text = helps[f"riskpo.{f.name}"]
        assert text.startswith(description + " (default: from --riskpo.preset; "), (f.name, text)
        default = getattr(RiskPOConfig(), f.name)
        for preset in RiskPOConfig.preset_names():
            value = getattr(RiskPOConfig.preset(preset), f.name)
            if value != default:
                assert f"{preset}: {value}" in text, (f.name, preset, text)
    assert "riskpo_authors_easy_math: question_std" in helps["riskpo.credit"]


def test_flags_that_carry_a_config_key_show_its_description():
    from riskpo_mm.config import describe

    helps = _riskpo_help()
    for flag, key in {"riskpo.preset": "algorithm.preset", "riskpo.reward_clip": "reward.clip_range",
                      "riskpo.overlong_buffer": "reward.overlong_buffer_len",
                      "riskpo.overlong_factor": "reward.overlong_penalty_factor", "riskpo.eval_k": "eval.k",
                      "riskpo.eval_max_new_tokens": "eval.max_new_tokens"}.items():
        assert helps[flag] == f"{describe(key)} (riskpo-mm config key {key})", flag
    assert helps["riskpo.estimator"].startswith(describe("algorithm.estimator").rstrip("."))
