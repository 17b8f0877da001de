"""The YAML config model: presets, overrides, and errors that name the key."""

from pathlib import Path

import pytest
import yaml

from riskpo_mm.algo import RiskPOConfig
from riskpo_mm.config import ConfigError, apply_overrides, load_config, validate_config

CONFIGS = sorted(Path(__file__).resolve().parents[1].glob("configs/*/*.yaml"))
MINIMAL = {"name": "t", "model": {"path": "m"}, "data": {"train": "x.jsonl"}}


def test_every_shipped_config_validates():
    assert len(CONFIGS) >= 10
    for path in CONFIGS:
        cfg = load_config(path)
        assert cfg.name and cfg.model.path


def test_preset_sets_estimator_fields_and_explicit_keys_override_it():
    cfg = validate_config({**MINIMAL, "algorithm": {"preset": "riskpo_authors_hard_math", "riskpo": {"alpha": 0.1}}})
    expected = RiskPOConfig.preset("riskpo_authors_hard_math")
    assert cfg.algorithm.riskpo.credit == expected.credit == "sum_mean"
    assert cfg.algorithm.riskpo.baseline == "none"
    assert cfg.algorithm.riskpo.alpha == 0.1


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"rollout\.n_sample: unknown key"):
        validate_config({**MINIMAL, "rollout": {"n_sample": 4}})


def test_unknown_riskpo_field_lists_allowed_fields():
    with pytest.raises(ConfigError, match=r"algorithm.*unknown key\(s\) \['alpah'\].*alpha"):
        validate_config({**MINIMAL, "algorithm": {"riskpo": {"alpah": 0.1}}})


def test_bad_literal_names_key_and_allowed_values():
    with pytest.raises(ConfigError) as err:
        validate_config({**MINIMAL, "algorithm": {"riskpo": {"quantile_source": "median"}}})
    assert "algorithm.riskpo" in str(err.value) and "quantile_source" in str(err.value)


def test_unknown_estimator_lists_estimators():
    with pytest.raises(ConfigError, match=r"algorithm.estimator.*'ppo'.*riskpo"):
        validate_config({**MINIMAL, "algorithm": {"estimator": "ppo"}})


def test_incomplete_bundles_are_rejected_with_both_keys_named():
    with pytest.raises(ConfigError, match=r"prompts_per_step \(12\).*bundle_size \(5\)"):
        validate_config({**MINIMAL, "rollout": {"prompts_per_step": 12}})


def test_grpo_does_not_need_complete_bundles():
    cfg = validate_config({**MINIMAL, "rollout": {"prompts_per_step": 12}, "algorithm": {"estimator": "grpo"}})
    assert cfg.rollout.prompts_per_step == 12


def test_overrides_parse_yaml_values_into_nested_keys():
    raw = apply_overrides(MINIMAL, ["algorithm.riskpo.alpha=0.1", "eval.k=[1,2]", "engine=ray", "sft.enabled=true"])
    cfg = validate_config(raw)
    assert cfg.algorithm.riskpo.alpha == 0.1 and cfg.eval.k == [1, 2] and cfg.engine == "ray" and cfg.sft.enabled


def test_malformed_override_is_explained():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides(MINIMAL, ["algorithm.riskpo.alpha"])


def test_eval_k_beyond_n_is_rejected():
    with pytest.raises(ConfigError, match=r"eval.*\[16\].*eval.n=8"):
        validate_config({**MINIMAL, "eval": {"n": 8, "k": [1, 16]}})


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config(CONFIGS[0])
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg
    assert yaml.safe_load(cfg.to_yaml())["algorithm"]["riskpo"]["alpha"] == cfg.algorithm.riskpo.alpha


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_train_batch_size_must_divide_the_rollout_and_hold_whole_micro_batches():
    with pytest.raises(ConfigError, match=r"train.batch_size \(30\) must divide.*\(80\)"):
        validate_config({**MINIMAL, "train": {"batch_size": 30}})
    with pytest.raises(ConfigError, match=r"train.batch_size \(20\) must be a multiple of train.micro_batch_size \(8\)"):
        validate_config({**MINIMAL, "train": {"batch_size": 20, "micro_batch_size": 8}})
    assert validate_config({**MINIMAL, "train": {"batch_size": 16, "micro_batch_size": 8}}).train.batch_size == 16
