"""`riskpo-mm convert`: each public layout -> valid riskpo-mm records, on fixtures in the real layouts."""

from __future__ import annotations

import json

import pytest

from riskpo_mm.data import DataError, load_image, load_records
from riskpo_mm.data.convert import convert, last_boxed, main
from riskpo_mm.data.samples import figure_png, write_raw_samples


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return write_raw_samples(tmp_path_factory.mktemp("raw"))


def _convert(raw, tmp_path, fmt):
    out = tmp_path / "out" / f"{fmt}.jsonl"
    assert main([fmt, "--input", str(raw[fmt]), "--output", str(out)]) == 0
    return load_records(out)


def test_geometry3k_keeps_problem_answer_and_extracts_the_image(raw, tmp_path):
    recs = _convert(raw, tmp_path, "geometry3k")
    assert [(r.task, r.answer) for r in recs] == [("geometry", "3\\sqrt{2}"), ("geometry", "56"), ("geometry", "12.6")]
    assert recs[0].prompt.startswith("<image>") and len(recs[0].images) == 1
    assert recs[0].images[0].startswith(str(tmp_path / "out" / "images"))
    assert open(recs[0].images[0], "rb").read() == figure_png(1)  # original bytes, not re-encoded


def test_geoqa_label_index_becomes_answer_letter(raw, tmp_path):
    recs = _convert(raw, tmp_path, "geoqa")
    assert [(r.task, r.answer, r.choices[ord(r.answer) - 65]) for r in recs] == [("mcq", "C", "130°"), ("mcq", "B", "50°")]
    assert all(load_image(r.images[0]).size == (160, 120) for r in recs)


def test_mathvista_multi_choice_to_letter_and_free_form_to_numeric(raw, tmp_path):
    recs = _convert(raw, tmp_path, "mathvista")
    assert [(r.task, r.answer) for r in recs] == [("mcq", "C"), ("numeric", "7.5"), ("numeric", "1")]
    assert recs[1].meta["unit"] == "cm" and recs[1].meta["precision"] == 1.0


def test_gsm8k_answer_is_the_number_after_the_hashes(raw, tmp_path):
    recs = _convert(raw, tmp_path, "gsm8k")
    assert [(r.task, r.answer) for r in recs] == [("math", "72"), ("math", "2400")]


def test_math_answer_is_the_last_boxed_expression(raw, tmp_path):
    recs = _convert(raw, tmp_path, "math")
    assert [r.answer for r in recs] == ["\\frac{5}{6}", "9\\pi"] and recs[0].meta["level"] == 1
    assert last_boxed("a \\boxed{1} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_boxed("no box") is None


def test_mbpp_tests_are_asserts_with_setup_code(raw, tmp_path):
    recs = _convert(raw, tmp_path, "mbpp")
    assert recs[0].task == "code" and recs[0].tests == ["assert min_of_two(1, 2) == 1", "assert min_of_two(5, 3) == 3"]
    assert recs[1].tests[0] == "import math\nassert root(16) == 4"
    assert "assert min_of_two(1, 2) == 1" in recs[0].prompt


def test_humaneval_test_calls_check_on_the_entry_point(raw, tmp_path):
    (rec,) = _convert(raw, tmp_path, "humaneval")
    assert rec.tests[0].endswith("check(add)") and "def add" in rec.prompt
    scope: dict = {}
    exec(rec.answer, scope)
    exec(rec.tests[0], scope)  # the canonical solution passes its own tests


def test_converted_code_records_pass_their_tests(raw, tmp_path):
    for rec in _convert(raw, tmp_path, "mbpp"):
        scope: dict = {}
        exec(rec.answer if "math" not in rec.answer else "import math\n" + rec.answer, scope)
        for t in rec.tests:
            exec(t, scope)


def test_missing_column_error_names_the_row_and_field(tmp_path):
    f = tmp_path / "g.jsonl"
    f.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(DataError, match=r"g.jsonl:1: field 'answer'"):
        convert("gsm8k", [f], tmp_path / "o.jsonl")
    assert main(["gsm8k", "--input", str(f), "--output", str(tmp_path / "o.jsonl")]) == 1
