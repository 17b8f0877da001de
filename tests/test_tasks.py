"""A task type is one `TaskSpec`: registering it sets its grader, prompt instruction, required record
fields, default reward weights and SFT target everywhere, from Python or from `reward.functions`."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskpo_mm import tasks
from riskpo_mm.data import DataError, Record
from riskpo_mm.data.templates import instruction_for
from riskpo_mm.rewards import RewardWeights, TaskSpec, register_task, score
from riskpo_mm.rewards.user_functions import UserFunctionError, register_functions

TASK_FILE = Path(__file__).parent / "extensions" / "word_length_task.py"


def test_a_task_spec_from_reward_functions_reaches_grader_prompt_records_weights_and_sft():
    assert register_functions({"word_length": f"{TASK_FILE}:TASK"}) == ["word_length"]
    record = {"id": "w1", "task": "word_length", "prompt": "Five letters?", "answer": "5"}
    assert score(record, "Sure: apple").reward == 1.0 and score(record, "pear").reward == 0.0
    assert instruction_for("word_length") == "Answer with one word of that many letters."
    with pytest.raises(DataError, match="answer"):
        Record.from_dict({"id": "w2", "task": "word_length", "prompt": "?"}, where="t.jsonl:1")
    assert RewardWeights().for_task("word_length").accuracy == 1.0
    from riskpo_mm.engine.sft import gold_response

    assert gold_response(Record.from_dict(record, where="t.jsonl:1")) == "xxxxx"


def test_config_weights_and_instructions_still_override_a_specs_defaults():
    register_task(TaskSpec("shout", grader=lambda r, s: float(s.isupper()), instruction="Shout.", weights=(0.5, 0.5)))
    assert RewardWeights.from_dict({"tasks": {"shout": {"accuracy": 1.0, "format": 0.0}}}).for_task("shout").accuracy == 1.0
    assert RewardWeights().for_task("shout").accuracy == 0.5
    assert instruction_for("shout", {"shout": "Whisper."}) == "Whisper."
    assert tasks.get("shout").instruction == "Shout."


def test_a_bare_grader_function_takes_the_defaults():
    register_task("always", lambda record, response: 1.0)
    assert score({"id": "a", "task": "always", "prompt": "?", "answer": "1"}, "x").reward == 1.0
    assert instruction_for("always") == instruction_for("math")


def test_bad_specs_and_misnamed_task_files_are_errors_naming_the_part(tmp_path):
    with pytest.raises(ValueError, match=r"requires: unknown fields \['gold'\]"):
        TaskSpec("t", grader=len, requires=("gold",))
    with pytest.raises(TypeError, match="grader: expected a callable"):
        TaskSpec("t", grader=None)
    with pytest.raises(UserFunctionError, match="is the TaskSpec of task 'word_length', not 'other'"):
        register_functions({"other": f"{TASK_FILE}:TASK"})
