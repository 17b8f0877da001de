"""Generated word problems: deterministic, answers right (recomputed independently), splits disjoint,
gold answers graded correct in the prompt's answer format, levels as documented."""

from __future__ import annotations

import json
import re

import pytest

from riskpo_mm.data.record import Record
from riskpo_mm.data.templates import INSTRUCTIONS, build_messages
from riskpo_mm.data.word_problems import (EXAMPLE_A, LEVELS, MATH_INSTRUCTION, SOURCE, generate, make_split,
                                          write_split)


def _ints(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", text)]


def recompute(level: int, template: str, text: str) -> int:
    """The answer from the problem text alone (numbers in reading order), per template's story."""
    v = _ints(text)
    if template in ("add", "together", "add_big"):
        a, b = v
        return a + b
    if template in ("sub", "sub_big"):
        a, b = v
        return a - b
    if template == "mul":
        a, b = v
        return a * b
    if template == "mul_add":
        a, b, d = v
        return a * b + d
    if template == "mul_sub":
        a, b, d = v
        return a * b - d
    if template == "add_sub":
        a, b, d = v
        return a + b - d
    if template == "two_products":
        a, b, d, e, f = v
        return a * b + d * e - f
    if template == "sum_times":
        a, b, k, d = v
        return (a + b) * k - d
    if template == "change":
        m, a, p, b, q = v
        return m - a * p - b * q
    raise AssertionError(f"unknown template {template}")


def test_deterministic_per_seed():
    assert make_split(30, 10, seed=3) == make_split(30, 10, seed=3)
    assert make_split(30, 10, seed=3) != make_split(30, 10, seed=4)
    # a longer draw starts with the shorter one (the same problems whatever the count)
    assert [p.text for p in generate(2, 50, 0)][:20] == [p.text for p in generate(2, 20, 0)]


@pytest.mark.parametrize("level", LEVELS)
def test_answers_recomputed_independently(level):
    for p in generate(level, 300, 0):
        assert p.level == level
        assert p.answer >= 0
        assert recompute(level, p.template, p.text) == p.answer, p


def test_no_train_test_overlap_and_counts():
    train, test = make_split(200, 50, seed=0)
    assert len(train) == 200 * len(LEVELS) and len(test) == 50 * len(LEVELS)
    text = lambda r: r["prompt"][-1]["content"]  # noqa: E731
    assert not {text(r) for r in train} & {text(r) for r in test}
    assert len({text(r) for r in train}) == len(train)
    assert len({r["id"] for r in train + test}) == len(train) + len(test)
    for level in LEVELS:
        assert sum(r["meta"]["level"] == level for r in test) == 50


def test_records_valid_and_levels(tmp_path):
    tr, te = write_split(tmp_path, 5, 5, levels=(1, 3), seed=0)
    for path in (tr, te):
        for i, line in enumerate(path.read_text().splitlines()):
            d = json.loads(line)
            rec = Record.from_dict(d, where=f"{path}:{i + 1}")
            assert rec.task == "math" and rec.meta["source"] == SOURCE and rec.meta["level"] in (1, 3)
            assert int(rec.answer) >= 0


def test_harder_levels_have_more_steps():
    ops = {L: sum(len(_ints(p.text)) for p in generate(L, 100, 0)) / 100 for L in LEVELS}
    assert ops[1] < ops[3] < ops[4] and ops[2] < ops[3]


def test_prompt_asks_for_boxed_and_grader_accepts_gold():
    from riskpo_mm.rewards import score

    assert MATH_INSTRUCTION == INSTRUCTIONS["math"]
    train, _ = make_split(3, 1, seed=0)
    for d in train:
        rec = Record.from_dict(d)
        msgs = build_messages(rec)
        assert msgs[-1]["role"] == "user" and "\\boxed{}" in msgs[-1]["content"][-1]["text"]
        assert msgs[1]["role"] == "assistant" and "\\boxed{14}" in msgs[1]["content"][0]["text"]
        # the worked example's format, with this problem's answer
        good = EXAMPLE_A.replace("14", rec.answer).replace("\\boxed{" + rec.answer + "}", "\\boxed{" + rec.answer + "}")
        assert score(rec, f"<think>work</think>\n\\boxed{{{rec.answer}}}").accuracy == 1.0
        assert score(rec, good.split("</think>")[0] + f"</think>\n\\boxed{{{rec.answer}}}").accuracy == 1.0
        assert score(rec, f"<think>work</think>\n\\boxed{{{int(rec.answer) + 1}}}").accuracy == 0.0
