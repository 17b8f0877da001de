"""The pass@k harness: grading + aggregation on known responses, and end to end on a tiny model."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from riskpo_mm.data import ImageConfig, Record, load_records
from riskpo_mm.eval import pass_at_k
from riskpo_mm.eval.cli import main as eval_main
from riskpo_mm.eval.harness import EvalResult, Sample, evaluate, evaluate_samples
from eval_helpers import geometry_test_file, tiny_model_dir

RIGHT, RIGHT_DEG, RIGHT_NO_THINK = "<think>a</think> \\boxed{30}", "<think>b</think> \\boxed{30^\\circ}", "\\boxed{30}"
WRONG, EMPTY = "<think>a</think> \\boxed{40}", ""


def records():
    return [
        Record("g1", "geometry", "x?", [], "30", meta={"source": "syn", "level": 1}),
        Record("g2", "geometry", "y?", [], "30", meta={"source": "syn", "level": 2}),
        Record("m1", "mcq", "pick", [], "B", choices=["1", "2", "3"], meta={"source": "geoqa"}),
    ]


def samples(texts_per_record):
    return [[Sample(text=t, length=10 + i, logprob_sum=-2.0 * (10 + i)) for i, t in enumerate(row)] for row in texts_per_record]


@pytest.fixture
def result():
    texts = [
        [RIGHT, RIGHT_DEG, WRONG, EMPTY],  # 2 correct; majority "30" (30 and 30^\circ vote together)
        [WRONG, WRONG, RIGHT_NO_THINK, EMPTY],  # 1 correct; majority "40" (wrong)
        ["<think>a</think> \\boxed{B}", "<think>a</think> \\boxed{C}", "<think>a</think> \\boxed{(B)}", WRONG],
    ]
    return evaluate_samples(records(), samples(texts), ks=[1, 2, 4], n_boot=200, seed=3)


def test_metrics_are_means_of_per_problem_unbiased_estimates(result):
    m = result.overall
    for k in (1, 2, 4):
        want = np.mean([pass_at_k(4, c, k) for c in (2, 1, 2)])
        assert m[f"pass@{k}"] == pytest.approx(want)
    assert m["avg@4"] == pytest.approx(5 / 12) == pytest.approx(m["pass@1"])
    assert m["maj@4"] == pytest.approx(2 / 3)
    assert m["format_rate"] == pytest.approx(9 / 12)
    assert m["response_length"] == pytest.approx(11.5)
    assert m["entropy"] == pytest.approx(2.0)  # -sum(logprob) / tokens
    assert m["problems"] == 3 and m["samples_per_problem"] == 4
    lo, hi = result.ci["all"]["pass@2"]
    assert lo <= m["pass@2"] <= hi


def test_metrics_are_split_by_task_source_and_level(result):
    assert set(result.by("task")) == {"geometry", "mcq"}
    assert set(result.by("source")) == {"syn", "geoqa"}
    assert set(result.by("level")) == {"1", "2"}  # the mcq record has no level
    assert result.by("task")["geometry"]["pass@1"] == pytest.approx(3 / 8)
    assert result.by("level")["2"]["maj@4"] == 0.0
    assert result.by("source")["geoqa"]["pass@4"] == 1.0


def test_per_problem_outcomes_keep_counts_answers_and_responses(result):
    g1, g2, m1 = result.problems
    assert (g1.correct, g1.majority, g1.majority_correct, g1.level) == (2, "30", True, "1")
    assert g1.accuracy == [1, 1, 0, 0] and g1.reasons[3] == "no boxed answer"
    assert (g2.majority, g2.majority_correct) == ("40", False)
    assert (m1.correct, m1.majority, m1.majority_correct) == (2, "B", True)
    assert g1.responses[0] == RIGHT


def test_results_round_trip_through_json(result, tmp_path):
    path = result.save(tmp_path / "r.json")
    back = EvalResult.load(path)
    assert back.metrics == json.loads(json.dumps(result.metrics))
    assert back.problems == result.problems
    assert "pass@1 0.417 [" in back.summary() and "maj@4 0.667" in back.summary()
    with pytest.raises(ValueError, match="not a riskpo-mm eval results file"):
        EvalResult.from_json(json.dumps({"metrics": {}}))


def test_k_beyond_the_sample_count_is_rejected(result):
    with pytest.raises(ValueError, match="k values must be integers in \\[1, n=4\\]"):
        evaluate_samples(records(), samples([[RIGHT] * 4] * 3), ks=[1, 8])


def test_evaluate_end_to_end_on_a_tiny_model_and_synthetic_geometry(tmp_path_factory):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model_dir = tiny_model_dir(tmp_path_factory)
    recs = list(load_records([geometry_test_file(tmp_path_factory)]))[:4]
    assert len(recs) == 4 and all(r.images for r in recs)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    kwargs = dict(family="qwen2_5_vl", image_config=ImageConfig(min_pixels=3136, max_pixels=12544), n=2, ks=[1, 2],
                  temperature=1.0, max_new_tokens=8, batch_size=4, seed=0)
    res = evaluate(model, processor, recs, **kwargs)
    assert [p.id for p in res.problems] == [r.id for r in recs]
    assert all(len(p.responses) == 2 and all(1 <= n <= 8 for n in p.length) for p in res.problems)
    m = res.overall
    assert 0.0 <= m["pass@1"] <= m["pass@2"] <= 1.0
    assert m["entropy"] > 0.0 and 1.0 <= m["response_length"] <= 8.0
    assert set(res.by("level")) == {str(r.meta["level"]) for r in recs}  # synthetic records carry a level
    again = evaluate(model, processor, recs, **kwargs)
    assert [p.responses for p in again.problems] == [p.responses for p in res.problems]  # seeded


def test_cli_writes_a_results_file_and_rejects_bad_flags(tmp_path_factory, tmp_path, capsys):
    model_dir = tiny_model_dir(tmp_path_factory)
    data = geometry_test_file(tmp_path_factory)
    out = tmp_path / "results.json"
    rc = eval_main(["--model", str(model_dir), "--data", str(data), "--n", "2", "--k", "1,2", "--max-new-tokens", "4",
                    "--max-problems", "2", "--max-pixels", "12544", "--out", str(out)])
    assert rc == 0
    res = EvalResult.load(out)
    assert res.overall["problems"] == 2 and res.config["model"] == str(model_dir)
    assert "pass@2" in capsys.readouterr().out

    assert eval_main(["--model", str(model_dir), "--data", str(data), "--n", "2", "--k", "1,4", "--out", str(out)]) == 2
    assert "--k: values [4] outside [1, --n=2]" in capsys.readouterr().err
    assert eval_main(["--model", str(tmp_path), "--data", str(data), "--out", str(out)]) == 2
    assert "not a model folder" in capsys.readouterr().err
    if importlib.util.find_spec("vllm") is None:
        assert eval_main(["--model", str(model_dir), "--data", str(data), "--n", "2", "--k", "1", "--engine", "vllm",
                          "--out", str(out)]) == 2
        assert "vllm package is not importable" in capsys.readouterr().err
