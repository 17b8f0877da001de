"""bench.learning's results code (summary, table, JSON keys, plots) on a tiny fake result: no training."""

from __future__ import annotations

import json
import math

from riskpo_mm.bench import learning


def _fake_run(recipe: str, seed: int, p1: float, ent: list[float]) -> dict:
    passk = {f"pass@{k}": min(1.0, p1 * (1 + 0.3 * (k - 1))) for k in range(1, 17)}
    return {"recipe": recipe, "estimator": learning.RECIPES[recipe]["algorithm"]["estimator"], "seed": seed,
            "steps": list(range(1, len(ent) + 1)), "entropy_curve": ent, "reward_curve": [0.1, 0.2, None][: len(ent)],
            "cvar_curve": [0.0, 0.1, 0.2][: len(ent)], "passk": passk, "maj@k": {"maj@16": p1},
            "final": {"pass@1": passk["pass@1"], "pass@4": passk["pass@4"], "pass@16": passk["pass@16"],
                      "entropy": ent[-1]}}


def _fake_result() -> dict:
    args = learning.build_parser().parse_args(["--seeds", "0,1"])
    runs = [_fake_run("grpo", 0, 0.2, [1.0, 0.8, 0.6]), _fake_run("grpo", 1, 0.3, [1.0, 0.7, 0.5]),
            _fake_run("riskpo_paper", 0, 0.25, [1.0, 1.0, 0.9])]
    base = {"overall": {"pass@1": 0.2, "pass@4": 0.4, "pass@16": 0.7, "entropy": 1.1,
                        **{f"pass@{k}": 0.2 for k in range(1, 17)}}}
    return {"settings": learning.settings_of(args), "base": base, "runs": runs}


def test_summary_table_json_plots(tmp_path):
    result = _fake_result()
    result["summary"] = learning.summarize(result)
    g = result["summary"]["grpo"]
    assert math.isclose(g["pass@1"]["mean"], 0.25) and math.isclose(g["pass@1"]["std"], 0.0707, rel_tol=1e-3)
    assert math.isclose(g["pass@1"]["vs_base"], 0.05)
    assert result["summary"]["riskpo_paper"]["pass@1"]["std"] == 0.0  # one seed
    table = learning.format_table(result)
    assert "grpo" in table and "riskpo_paper" in table and "base (start)" in table and "0.250±0.071 (+0.050)" in table
    text = json.dumps(result)  # JSON-serialisable with the required keys
    back = json.loads(text)
    for run in back["runs"]:
        assert {"estimator", "recipe", "seed", "entropy_curve", "final", "reward_curve", "cvar_curve", "passk",
                "maj@k"} <= set(run)
        assert {"pass@1", "pass@4", "pass@16", "entropy"} <= set(run["final"])
        assert len(run["passk"]) == 16
    assert {"steps", "prompts_per_step", "samples_per_prompt", "max_new_tokens", "lr", "eval_n"} <= set(back["settings"])
    paths = learning.write_plots(result, tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["cvar.png", "entropy.png", "passk.png", "reward.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_run_config_is_a_valid_run(tmp_path):
    from riskpo_mm.config import validate_config

    args = learning.build_parser().parse_args(["--out-dir", str(tmp_path)])
    for recipe in learning.RECIPES:
        raw = learning.run_config(args, recipe, 1, tmp_path / "m", tmp_path / "tr.jsonl", tmp_path / "te.jsonl")
        cfg = validate_config(raw)
        assert cfg.seed == 1 and cfg.eval.every_steps == cfg.train.steps and not cfg.eval.before_and_after
        assert cfg.eval.k == list(range(1, 17)) and cfg.model.family == "qwen2"
        assert cfg.algorithm.estimator == learning.RECIPES[recipe]["algorithm"]["estimator"]


def test_base_over_eval_seeds():
    result = _fake_result()
    b = result["base"]["overall"]
    result["base_by_seed"] = {"0": b, "1": {**b, "pass@1": 0.3}}
    assert math.isclose(learning.base_mean(result)["pass@1"], 0.25)
    result["summary"] = learning.summarize(result)
    assert math.isclose(result["summary"]["grpo"]["pass@1"]["vs_base"], 0.0, abs_tol=1e-12)
    assert "0.250±0.071" in learning.format_table(result).splitlines()[2]  # the base row: mean ± std over 2 seeds
