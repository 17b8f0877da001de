"""Supervised warm start: gold responses in the template's form, training, and its cache."""

from __future__ import annotations

import json

from engine_helpers import run_config
from riskpo_mm.data import Record
from riskpo_mm.engine.sft import DONE, ensure_sft, gold_response, sft_key
from riskpo_mm.rewards import score


def test_gold_responses_earn_full_reward_under_each_template():
    math_rec = Record(id="m", task="math", prompt="1+1?", answer="2", meta={"rationale": "one plus one"})
    mcq_rec = Record(id="c", task="mcq", prompt="<image>Colour?", answer="B", choices=["red", "blue", "green", "purple"])
    for rec in (math_rec, mcq_rec):
        result = score(rec, gold_response(rec))
        assert result.accuracy == 1.0 and result.format_ok, (rec.task, result)


def test_warm_start_trains_is_reused_and_retrains_when_its_settings_change(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    cfg = run_config(root, "sft_run", sft={"enabled": True, "steps": 3, "lr": 1e-3, "batch_size": 4})
    out = ensure_sft(cfg)
    stats = json.loads((out / DONE).read_text())
    assert stats["steps"] == 3 and stats["key"] == sft_key(cfg)
    assert (out / "config.json").is_file() and (out / "processor_config.json").is_file()
    stamp = (out / DONE).stat().st_mtime_ns
    assert ensure_sft(cfg) == out and (out / DONE).stat().st_mtime_ns == stamp  # cached

    changed = run_config(root, "sft_run", sft={"enabled": True, "steps": 2, "lr": 1e-3, "batch_size": 4})
    assert sft_key(changed) != sft_key(cfg)
    ensure_sft(changed)
    assert json.loads((out / DONE).read_text())["steps"] == 2  # retrained, not the stale cache
