"""The estimator interface: built-ins satisfy the protocol, estimators register by name or by file,
options are validated against the estimator's own dataclass, and the step reads `keep` from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from riskpo_mm.algo import (ESTIMATORS, AdvantageStep, Estimator, RiskPOConfig, build_estimator, build_options,
                            register_estimator, resolve_estimator)

SIGN = str(Path(__file__).parent / "extensions" / "centered_sign.py") + ":CenteredSign"


@pytest.mark.parametrize("name", ["riskpo", "grpo", "dr_grpo", "dapo"])
def test_every_builtin_estimator_satisfies_the_estimator_protocol(name):
    est = build_estimator(name, seed=0)
    assert isinstance(est, Estimator)
    est.advantages(torch.rand(10, 4, dtype=torch.float64))
    assert isinstance(est.metrics, dict) and all(isinstance(v, float) for v in est.metrics.values())


def test_a_file_estimator_loads_once_and_takes_its_own_options():
    cls = resolve_estimator(SIGN)
    assert resolve_estimator(SIGN) is cls and cls.__name__ == "CenteredSign"
    est = build_estimator(SIGN, {"scale": 0.5})
    adv = est.advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64))
    assert adv.tolist() == [[0.5, -0.5, -0.5, 0.5]]
    assert build_options(SIGN).scale == 1.0


def test_unknown_or_bad_options_name_the_key_and_the_allowed_ones():
    with pytest.raises(ValueError, match=r"algorithm\.options: unknown option\(s\) \['scal'\].*allowed: \['scale'\]"):
        build_options(SIGN, {"scal": 2})
    with pytest.raises(ValueError, match=r"algorithm\.options: scale: need a number > 0"):
        build_options(SIGN, {"scale": -1})
    with pytest.raises(ValueError, match=r"algorithm\.options: estimator 'grpo' takes no options, got \['x'\]"):
        build_options("grpo", {"x": 1})


def test_unknown_names_and_broken_files_are_errors_naming_them(tmp_path):
    with pytest.raises(ValueError, match=r"unknown estimator 'ppo'; allowed: riskpo, grpo"):
        resolve_estimator("ppo")
    with pytest.raises(ValueError, match="file not found"):
        resolve_estimator(str(tmp_path / "nope.py") + ":X")
    bad = tmp_path / "bad.py"
    bad.write_text("class X:\n    pass\n")
    with pytest.raises(TypeError, match=r"lacks advantages, state_dict, load_state_dict"):
        resolve_estimator(f"{bad}:X")
    with pytest.raises(ValueError, match="has no class 'Y'"):
        resolve_estimator(f"{bad}:Y")


def test_a_registered_riskpo_variant_reads_algorithm_riskpo_and_its_metrics_are_prefixed():
    from riskpo_mm.algo import RiskPOEstimator

    class Halved(RiskPOEstimator):
        def advantages(self, rewards, groups=None, mask=None):
            return 0.5 * super().advantages(rewards, groups, mask)

    register_estimator("halved_riskpo", Halved)
    try:
        cfg = RiskPOConfig.preset("riskpo_authors_hard_math")
        rewards = (torch.rand(10, 4, generator=torch.Generator().manual_seed(0)) < 0.5).double()
        step = AdvantageStep("halved_riskpo", cfg, seed=1)
        assert step.estimator.config == cfg and step.monitor is step.estimator
        out = step(rewards, ["math"] * 10)
        expected = build_estimator("riskpo", cfg, seed=1).advantages(rewards, groups=["math"] * 10)
        torch.testing.assert_close(out.advantages, 0.5 * expected)
        assert "halved_riskpo/adv/mean" in out.metrics
        with pytest.raises(ValueError, match="takes its options from algorithm.riskpo"):
            AdvantageStep("halved_riskpo", cfg, options={"alpha": 0.1})
    finally:
        ESTIMATORS.pop("halved_riskpo")


def test_the_step_trains_only_on_the_prompts_the_estimators_keep_marks():
    rewards = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    out = AdvantageStep("dapo")(rewards, ["math", "math"])
    assert out.keep.tolist() == [[False, False], [True, True]]
    out = AdvantageStep(SIGN, options={"scale": 2.0})(rewards, ["math", "math"])
    assert out.keep.all() and out.advantages.tolist() == [[0.0, 0.0], [2.0, -2.0]]
    assert out.metrics["centered_sign/calls"] == 1.0
