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
    with pytest.raises(ConfigError, match=r"train.batch_size \(30\) must divide.*= 80\)"):
        validate_config({**MINIMAL, "train": {"batch_size": 30}})
    with pytest.raises(ConfigError, match=r"train.batch_size \(20\) must be a multiple of train.micro_batch_size \(8\)"):
        validate_config({**MINIMAL, "train": {"batch_size": 20, "micro_batch_size": 8}})
    assert validate_config({**MINIMAL, "train": {"batch_size": 16, "micro_batch_size": 8}}).train.batch_size == 16


def test_unknown_key_anywhere_suggests_the_closest_key():
    with pytest.raises(ConfigError, match=r"modle: unknown key; did you mean model\?"):
        validate_config({**MINIMAL, "modle": {"path": "m"}})
    with pytest.raises(ConfigError, match=r"rollout\.n_sample: unknown key; did you mean rollout\.n_samples_per_prompt\?"):
        validate_config({**MINIMAL, "rollout": {"n_sample": 4}})
    with pytest.raises(ConfigError, match=r"did you mean reward\.weights\.math\.accuracy\?"):
        validate_config({**MINIMAL, "reward": {"weights": {"math": {"acc": 1.0}}}})
    with pytest.raises(ConfigError, match=r"did you mean 'alpha' for 'alpah'"):
        validate_config({**MINIMAL, "algorithm": {"riskpo": {"alpah": 0.1}}})


def test_errors_caused_by_set_name_the_set_flag(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    with pytest.raises(ConfigError, match=r"rollout\.n_sample: unknown key.*\(from --set rollout\.n_sample=3\)"):
        load_config(path, ["rollout.n_sample=3"])
    with pytest.raises(ConfigError, match=r"\(from --set rollout\.n_samples_per_prompt=3\)"):
        load_config(path, ["rollout.n_samples_per_prompt=3"])  # derived batch 30 vs micro batch 8


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nrollout: {n_samples_per_prompt: 4\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value).split("not valid YAML")[1] and "<unicode string>" not in str(err.value)


def test_config_errors_carry_no_internal_names():
    for extra in ({"algorithm": {"riskpo": {"alpha": 1.5}}}, {"rollout": {"prompts_per_step": 12}}, {"model": None}):
        with pytest.raises(ConfigError) as err:
            validate_config({**MINIMAL, **extra})
        text = str(err.value)
        assert "RiskPOConfig" not in text and "(top level)" not in text and "ModelConfig" not in text, text
    with pytest.raises(ConfigError, match=r"  algorithm\.riskpo\.alpha/beta: need 0 < alpha < beta < 1"):
        validate_config({**MINIMAL, "algorithm": {"riskpo": {"alpha": 1.5}}})


def test_derived_batch_size_is_explained_not_blamed_on_the_user():
    with pytest.raises(ConfigError) as err:
        validate_config({**MINIMAL, "rollout": {"prompts_per_step": 10, "n_samples_per_prompt": 1}})
    text = str(err.value)
    assert "train.batch_size is not set, so it is rollout.prompts_per_step * rollout.n_samples_per_prompt " \
           "(10 * 1 = 10)" in text and "train.batch_size (10)" not in text
