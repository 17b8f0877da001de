"""bench.demo_seeds reads each run's report and intervals and checks the demo's claim per run."""

from __future__ import annotations

import json

from riskpo_mm.bench.demo_seeds import render, summarise


def _run(tmp_path, name, before, after, before_ci8, after_ci8=(0.9, 1.0)):
    run = tmp_path / name
    run.mkdir()
    metrics = lambda p1, p8: {"pass@1": p1, "pass@8": p8, "maj@8": p1, "entropy": 0.1, "format_rate": 1.0}
    (run / "report.json").write_text(json.dumps({"estimator": "riskpo", "config": {"seed": 3}, "phases_s": {"rl_s": 1.0},
                                                 "before_rl": metrics(*before), "after_rl": metrics(*after)}))
    for ph, ci8 in (("before", before_ci8), ("after", list(after_ci8))):
        (run / f"eval_{ph}.json").write_text(json.dumps({"ci": {"all": {"pass@1": [0.1, 0.9], "pass@8": ci8}}}))
    return run


def test_the_claim_needs_a_pass1_gain_of_005_and_pass8_not_below_beyond_the_intervals(tmp_path):
    good = summarise(_run(tmp_path, "riskpo_s0", (0.78, 1.0), (0.97, 0.99), [0.97, 1.0]))
    small = summarise(_run(tmp_path, "riskpo_s1", (0.78, 1.0), (0.82, 1.0), [0.97, 1.0]))
    narrow = summarise(_run(tmp_path, "riskpo_s2", (0.78, 1.0), (0.97, 0.90), [0.97, 1.0], after_ci8=(0.85, 0.95)))
    within = summarise(_run(tmp_path, "riskpo_s3", (0.78, 1.0), (0.97, 0.98), [1.0, 1.0], after_ci8=(0.95, 1.0)))
    assert within["holds"]
    assert good["holds"] and not small["holds"] and not narrow["holds"]
    assert good["gain/pass@1"] == 0.97 - 0.78 and good["seed"] == 3
    text = render([good, small, narrow])
    assert "claim holds in 1 of 3" in text and "NO" in text
