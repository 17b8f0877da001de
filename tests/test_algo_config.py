"""RiskPOConfig: defaults, presets (docs/method.md section 8), validation, registry."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import BaseModel, ValidationError

from riskpo_mm.algo import ESTIMATORS, PRESET_ROLLOUT, RiskPOConfig, RiskPOEstimator, build_estimator
from riskpo_mm.algo.group import DAPOEstimator, DrGRPOEstimator, GRPOEstimator


def test_defaults_are_the_riskpo_preset():
    cfg = RiskPOConfig()
    assert (cfg.alpha, cfg.beta, cfg.w_mix, cfg.bundle_size) == (0.2, 0.8, 1.5, 5)
    assert (cfg.quantile_source, cfg.pairing, cfg.baseline, cfg.credit, cfg.scale) == (
        "tracked", "random", "natural", "uniform", "bundle_std"
    )
    assert cfg.lr_q == 0.1 and cfg.lr_q_decay == 0.0 and cfg.objective == "mvar"
    assert RiskPOConfig.preset("riskpo") == cfg


def test_presets_match_spec_table():
    easy = RiskPOConfig.preset("riskpo_authors_easy_math")
    assert (easy.alpha, easy.beta, easy.quantile_source, easy.pairing, easy.baseline, easy.credit) == (
        0.2, 0.9, "bundle", "positional", "natural", "question_std"
    )
    hard = RiskPOConfig.preset("riskpo_authors_hard_math")
    assert (hard.beta, hard.quantile_source, hard.pairing, hard.baseline, hard.credit) == (
        0.8, "bundle", "positional", "none", "sum_mean"
    )
    seeking = RiskPOConfig.preset("riskpo_seeking")
    assert (seeking.objective, seeking.credit, seeking.upper_weight) == ("seeking", "question_std", 1.5)
    assert {k: v["n_samples_per_prompt"] for k, v in PRESET_ROLLOUT.items()} == {
        "riskpo": 8, "riskpo_authors_easy_math": 5, "riskpo_authors_hard_math": 10, "riskpo_seeking": 5
    }
    assert set(PRESET_ROLLOUT) == set(RiskPOConfig.preset_names())
    assert RiskPOConfig.preset("riskpo", alpha=0.1).alpha == 0.1


@pytest.mark.parametrize(
    "field,value",
    [("bundle_by", "random"), ("quantile_source", "median"), ("pairing", "sorted"), ("baseline", "mean"),
     ("scale", "global"), ("credit", "std"), ("objective", "mean")],
)
def test_invalid_option_names_the_field_and_allowed_values(field, value):
    with pytest.raises(ValueError, match=rf"RiskPOConfig\.{field}: got '{value}'; allowed"):
        RiskPOConfig(**{field: value})


@pytest.mark.parametrize(
    "kwargs,field",
    [({"alpha": 0.9, "beta": 0.8}, "alpha/beta"), ({"bundle_size": 0}, "bundle_size"), ({"lr_q": 0.0}, "lr_q"),
     ({"w_mix": -1.0}, "w_mix"), ({"track_grid": (0.5, 0.2)}, "track_grid"),
     ({"baseline": "tracked_mean", "track_grid": (0.5,)}, "track_grid")],
)
def test_invalid_numbers_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"RiskPOConfig\.{field}"):
        RiskPOConfig(**kwargs)


def test_unknown_preset_lists_names():
    with pytest.raises(ValueError, match="riskpo_authors_easy_math"):
        RiskPOConfig.preset("nope")


def test_config_is_a_pydantic_field_type():
    class Section(BaseModel):
        riskpo: RiskPOConfig = dataclasses.field(default_factory=RiskPOConfig)

    parsed = Section.model_validate({"riskpo": {**dataclasses.asdict(RiskPOConfig()), "alpha": 0.1, "track_grid": [0.1, 0.5]}})
    assert parsed.riskpo.alpha == 0.1 and parsed.riskpo.track_grid == (0.1, 0.5)
    with pytest.raises(ValidationError, match="riskpo.credit"):
        Section.model_validate({"riskpo": {"credit": "bad"}})
    with pytest.raises(ValidationError, match="RiskPOConfig.alpha/beta"):  # __post_init__ runs under pydantic
        Section.model_validate({"riskpo": {"alpha": 0.9}})


def test_registry_builds_every_estimator_by_name():
    assert set(ESTIMATORS) == {"riskpo", "grpo", "dr_grpo", "dapo"}
    assert isinstance(build_estimator("riskpo", RiskPOConfig(alpha=0.1)), RiskPOEstimator)
    assert build_estimator("riskpo").config == RiskPOConfig()
    assert isinstance(build_estimator("grpo"), GRPOEstimator)
    assert isinstance(build_estimator("dr_grpo"), DrGRPOEstimator)
    assert isinstance(build_estimator("dapo"), DAPOEstimator)
    with pytest.raises(ValueError, match="allowed: riskpo, grpo, dr_grpo, dapo"):
        build_estimator("ppo")
