"""A task type defined outside the package (one file): answer with a word of the asked length.

Used by the tests as a user would: ``reward.functions: {word_length: "tests/extensions/word_length_task.py:TASK"}``.
"""

import re

from riskpo_mm.tasks import TaskSpec


def grade(record, response: str) -> float:
    """1.0 when the last word of the response has ``record.answer`` letters (a float is enough)."""
    words = re.findall(r"[A-Za-z]+", response or "")
    return float(bool(words) and len(words[-1]) == int(record.answer))


TASK = TaskSpec(
    name="word_length",
    grader=grade,
    instruction="Answer with one word of that many letters.",
    requires=("answer",),
    weights=(1.0, 0.0),
    gold_response=lambda record: "x" * int(record.answer),
)
