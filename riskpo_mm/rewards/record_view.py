"""The record fields a grader reads, from a typed record or a plain dict."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

FIELDS = ("id", "task", "prompt", "images", "answer", "choices", "tests", "meta")


@dataclass(frozen=True)
class RecordView:
    """Read-only view of a data record (see architecture.md, "Data record")."""

    task: str
    answer: Any = None
    id: str = ""
    prompt: Any = None
    images: Any = None
    choices: list | None = None
    tests: Any = None
    meta: dict = field(default_factory=dict)


def as_record(obj: Any) -> RecordView:
    """Accept a RecordView, any object with the record attributes, a dict, or a JSON object string."""
    if isinstance(obj, RecordView):
        return obj
    if isinstance(obj, (str, bytes)):
        try:
            obj = json.loads(obj)
        except ValueError as e:
            raise ValueError(f"record: a string must be a JSON object ({e})") from e
    if isinstance(obj, Mapping):
        get = obj.get
    else:
        def get(name: str, default: Any = None) -> Any:
            return getattr(obj, name, default)
    task = get("task")
    if not isinstance(task, str) or not task:
        raise ValueError(f"record {get('id', '')!r}: field 'task' must be a non-empty string, got {task!r}")
    choices = get("choices")
    if choices is not None and not isinstance(choices, (list, tuple)):
        raise ValueError(f"record {get('id', '')!r}: field 'choices' must be a list, got {type(choices).__name__}")
    return RecordView(task=task, answer=get("answer"), id=str(get("id", "") or ""), prompt=get("prompt"),
                      images=get("images"), choices=list(choices) if choices is not None else None,
                      tests=get("tests"), meta=dict(get("meta") or {}))
