"""Graders, weights and the router: the grading tables and the reward contract."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from riskpo_mm import rewards
from riskpo_mm.rewards import GradeOutcome, RewardRouter, RewardWeights, TaskWeights, score, score_batch
from riskpo_mm.rewards.extract import boxed_contents, final_answer, think_format_ok
from rewards_cases import ALL_CASES, B, CODE_CASES, GEOMETRY_CASES, MATH_CASES, MCQ_CASES, T


def test_grading_tables_are_large_and_cover_every_task_type():
    assert len(ALL_CASES) >= 150
    assert {rec["task"] for rec, _, _ in ALL_CASES} == {"math", "geometry", "numeric", "mcq", "code"}
    assert min(len(MATH_CASES), len(GEOMETRY_CASES), len(MCQ_CASES)) >= 40 and len(CODE_CASES) >= 10


@pytest.mark.parametrize("record,response,expected", MATH_CASES + GEOMETRY_CASES + MCQ_CASES,
                         ids=lambda v: v if isinstance(v, int) else None)
def test_accuracy_matches_the_table(record, response, expected):
    res = score(record, response)
    assert not res.reason.startswith("error"), res
    assert res.accuracy == expected, (record, response, res)


def test_code_table_graded_as_one_concurrent_batch():
    records = [rec for rec, _, _ in CODE_CASES]
    results = score_batch(records, [resp for _, resp, _ in CODE_CASES], workers=2)
    for (rec, resp, expected), res in zip(CODE_CASES, results):
        assert res.accuracy == expected, (resp, res)
        assert not res.reason.startswith("error"), res


def test_last_top_level_box_is_the_answer_and_unclosed_boxes_are_dropped():
    assert boxed_contents("\\boxed{1} and \\boxed{\\frac{a}{\\boxed{b}}} \\boxed{2") == ["1", "\\frac{a}{\\boxed{b}}"]
    assert final_answer("<think>\\boxed{9}</think>no box here") == (None, "no boxed answer")


@pytest.mark.parametrize("response,ok", [
    (T("\\boxed{1}"), True),
    ("  <think>reason</think>\n\\boxed{1}", True),
    ("\\boxed{1}", False),
    ("<think>reason \\boxed{1}", False),
    ("<think></think>\\boxed{1}", False),
    ("<think>a</think><think>b</think>\\boxed{1}", False),
    ("<think>a</think>", False),
    ("reason</think>\\boxed{1}", False),
])
def test_think_template(response, ok):
    assert think_format_ok(response) is ok


@pytest.mark.parametrize("record,response,fmt", [
    ({"task": "math", "answer": "1"}, T("\\boxed{1}"), True),
    ({"task": "math", "answer": "1"}, T("The answer is 1"), False),
    ({"task": "math", "answer": "1"}, "\\boxed{1}", False),
    ({"task": "geometry", "answer": "1"}, T("\\boxed{2}"), True),
    ({"task": "mcq", "answer": "A", "choices": ["x", "y"]}, T("\\boxed{B}"), True),
    ({"task": "mcq", "answer": "A", "choices": ["x", "y"]}, T("Answer: A"), False),
    ({"task": "code", "tests": ["assert True"]}, T("```python\nx = 1\n```"), True),
    ({"task": "code", "tests": ["assert True"]}, T("```\nx = 1\n```"), False),
    ({"task": "code", "tests": ["assert True"]}, "```python\nx = 1\n```", False),
])
def test_format_is_the_task_template_obeyed(record, response, fmt):
    assert score(record, response).format_ok is fmt


def test_geometry_mixes_accuracy_and_format_0_9_0_1_and_reports_accuracy_apart():
    rec = {"task": "geometry", "answer": "5"}
    assert score(rec, B("5")).reward == pytest.approx(1.0)
    assert score(rec, "\\boxed{5}").reward == pytest.approx(0.9)
    wrong = score(rec, B("6"))
    assert (wrong.reward, wrong.accuracy, wrong.format_ok) == (pytest.approx(0.1), 0.0, True)


def test_math_rewards_correctness_only_by_default():
    rec = {"task": "math", "answer": "5"}
    assert score(rec, "\\boxed{5}").reward == 1.0 and score(rec, B("4")).reward == 0.0


def test_pm1_form_maps_components_to_plus_minus_one():
    w = RewardWeights(binary_form="pm1")
    rec = {"task": "math", "answer": "5"}
    assert score(rec, B("5"), w).reward == 1.0
    assert score(rec, B("4"), w).reward == -1.0
    geo = {"task": "geometry", "answer": "5"}
    assert score(geo, "\\boxed{4}", w).reward == pytest.approx(-1.0)
    assert score(geo, "\\boxed{5}", w).reward == pytest.approx(0.8)


def test_weights_from_config_name_bad_keys():
    w = RewardWeights.from_dict({"binary_form": "pm1", "tasks": {"math": {"accuracy": 0.5, "format": 0.5}}})
    assert w.for_task("math") == TaskWeights(0.5, 0.5) and w.for_task("geometry") == TaskWeights(0.9, 0.1)
    with pytest.raises(ValueError, match="rewards: unknown key"):
        RewardWeights.from_dict({"binary": "pm1"})
    with pytest.raises(ValueError, match="rewards.tasks.math"):
        RewardWeights.from_dict({"tasks": {"math": {"acc": 1}}})
    with pytest.raises(ValueError, match="binary_form"):
        RewardWeights(binary_form="-1/1")


@pytest.mark.parametrize("gold", ["", None, "\\frac{", "}{", "\\sqrt{"])
def test_unparseable_gold_is_a_reported_data_error_never_a_free_reward(gold):
    router = RewardRouter()
    res = router.score({"id": "bad", "task": "math", "answer": gold}, B(str(gold)))
    assert res.reward == 0.0 and res.accuracy == 0.0 and res.reason.startswith("error: bad gold")
    assert router.stats()["bad_gold"] == 1 and router.stats()["bad_gold/math"] == 1


def test_bad_mcq_gold_and_missing_code_tests_are_data_errors():
    assert score({"task": "mcq", "answer": "Q", "choices": ["a", "b"]}, B("A")).reason.startswith("error: bad gold")
    assert score({"task": "code", "tests": None}, T("```python\nx=1\n```")).reason.startswith("error: bad gold")


class _Exploding:
    runs_code = False

    def __call__(self, record, response):
        raise RuntimeError("grader bug")


@pytest.mark.parametrize("record,response", [
    ({"task": "exploding", "answer": "1"}, "x"),
    ({"task": "no-such-task"}, "x"),
    ({"answer": "1"}, "x"),
    ("not json", "x"),
    ({"task": "math", "answer": "1"}, 12345),
    (object(), "x"),
])
def test_internal_errors_give_zero_reward_counted_and_never_raise(record, response):
    router = RewardRouter()
    router.register("exploding", _Exploding())
    res = router.score(record, response)
    assert res.reward == 0.0 and res.accuracy == 0.0 and res.reason.startswith("error: ")
    assert router.stats()["errors"] == 1


def test_empty_or_missing_response_scores_zero_without_error():
    for resp in ("", None):
        res = score({"task": "math", "answer": "1"}, resp)
        assert res.reward == 0.0 and res.reason == "no boxed answer"


def test_users_register_new_tasks_by_name():
    def exact(record, response):
        return GradeOutcome(float(response.strip() == record.answer), True, "exact match")

    router = RewardRouter()
    router.register("exact", exact)
    assert "exact" in router.tasks()
    assert router.score({"task": "exact", "answer": "yes"}, " yes ").reward == 1.0
    with pytest.raises(ValueError):
        router.register("exact", exact, replace=False)
    rewards.register_task("exact-global", exact)
    assert score({"task": "exact-global", "answer": "a"}, "a").accuracy == 1.0


@dataclass
class _TypedRecord:
    id: str
    task: str
    prompt: str
    answer: str
    images: list = field(default_factory=list)
    choices: list | None = None
    tests: object = None
    meta: dict = field(default_factory=dict)


def test_typed_records_and_dicts_score_alike():
    typed = _TypedRecord("r1", "mcq", "<image> Which?", "C", choices=["1", "2", "3"])
    assert score(typed, B("C")) == score(vars(typed), B("C"))


def test_score_batch_keeps_order_across_task_types():
    records = [rec for rec, _, _ in ALL_CASES[::7]]
    responses = [resp for _, resp, _ in ALL_CASES[::7]]
    assert [r.accuracy for r in score_batch(records, responses)] == [e for _, _, e in ALL_CASES[::7]]
    with pytest.raises(ValueError, match="2 records but 1 responses"):
        score_batch(records[:2], responses[:1])


def test_math_grading_works_off_the_main_thread():
    out = []
    t = threading.Thread(target=lambda: out.append(score({"task": "math", "answer": "\\frac12"}, B("0.5"))))
    t.start()
    t.join()
    assert out[0].accuracy == 1.0 and not out[0].reason.startswith("error")


@pytest.mark.parametrize("gold", [float("nan"), "nan", "NaN", float("inf"), []])
def test_nan_or_empty_gold_is_a_data_error_never_matched_by_boxed_nan(gold):
    router = RewardRouter()
    res = router.score({"task": "math", "answer": gold}, B("nan"))
    assert res.reward == 0.0 and res.reason.startswith("error: bad gold"), res


def test_escaped_dollar_is_not_a_math_delimiter():
    assert score({"task": "math", "answer": "\\$18.90"}, B("\\$18.90")).reason == "correct"
    assert score({"task": "math", "answer": "18.9"}, T("The total is \\boxed{\\$18.90}")).accuracy == 1.0


def test_separately_boxed_parts_join_only_across_connectors():
    assert final_answer(T("\\boxed{1},\\boxed{2}, and \\boxed{3}"))[0] == "1, 2, 3"
    assert final_answer(T("\\boxed{4}, on reflection \\boxed{5}"))[0] == "5"
    assert final_answer(T("\\boxed{4} \\boxed{5}"))[0] == "5"
