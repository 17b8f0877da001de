"""The data record: one training/eval example, validated on the way in.

A record is one JSONL line or one parquet/HF-dataset row (see
data/README.md):

    id       unique non-empty string
    task     "math" | "geometry" | "mcq" | "code" | "numeric" | any registered name
    prompt   text, or chat messages [{"role", "content"}]; "<image>" marks where each image goes
    images   list of path / base64 data URI / bytes / HF image dict {bytes, path} / PIL image
    answer   gold answer as a string (multiple choice: the letter)
    choices  optional list of option texts (required for mcq)
    tests    code: list of Python snippets run after the solution (pass = no exception),
             or {"inputs": [...], "outputs": [...], "fn_name"?: str} for stdin/stdout or call-based tests
    meta     free dict (source, level, ...)

Task names: any non-empty string is accepted, so users can add tasks without
touching this module; the known tasks in `TASK_REQUIREMENTS` additionally get
their required fields checked. `register_task_name` adds such requirements for
a new task.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from riskpo_mm import tasks

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Fields that must be non-empty for a task, beyond the universal ones.
TASK_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "math": ("answer",),
    "geometry": ("answer",),
    "numeric": ("answer",),
    "mcq": ("answer", "choices"),
    "code": ("tests",),
}


def register_task_name(name: str, requires: tuple[str, ...] = ()) -> None:
    """Declare a task and the record fields it needs (a subset of answer, choices, tests, images)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"task name must be a non-empty string, got {name!r}")
    allowed = {"answer", "choices", "tests", "images"}
    unknown = set(requires) - allowed
    if unknown:
        raise ValueError(f"task {name!r}: unknown required fields {sorted(unknown)}; allowed {sorted(allowed)}")
    TASK_REQUIREMENTS[name] = tuple(requires)


class DataError(ValueError):
    """A bad record or data file; the message names file, line/row, field and what was expected."""

    def __init__(self, where: str, field_name: str, message: str):
        self.where, self.field, self.detail = where, field_name, message
        super().__init__(f"{where}: field {field_name!r}: {message}")


@dataclass(frozen=True)
class BadRecord:
    """One rejected record, kept for the report under on_bad_record: skip."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        pos = f":{self.line}" if self.line is not None else ""
        return f"{self.file}{pos}: field {self.field!r}: {self.message}"


def _type_name(x: Any) -> str:
    return type(x).__name__


def _is_image_ref(x: Any) -> bool:
    if isinstance(x, (str, bytes, bytearray)):
        return True
    if isinstance(x, dict):
        return ("bytes" in x or "path" in x) and (x.get("bytes") is not None or x.get("path") is not None)
    try:
        from PIL import Image
    except ImportError:  # pillow is a hard dependency; keep validation importable anyway
        return False
    return isinstance(x, Image.Image)


@dataclass
class Record:
    id: str
    task: str
    prompt: str | list[dict]
    images: list = field(default_factory=list)
    answer: str = ""
    choices: list[str] | None = None
    tests: list[str] | dict | None = None
    meta: dict = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """The prompt as plain text (chat prompts: the user turns joined), for display and text-only checks."""
        if isinstance(self.prompt, str):
            return self.prompt
        parts = []
        for m in self.prompt:
            c = m.get("content")
            if isinstance(c, str):
                parts.append(c)
            else:
                parts.extend(p.get("text", "") for p in c if p.get("type") == "text")
        return "\n".join(parts)

    @classmethod
    def from_dict(cls, d: Any, where: str = "<record>") -> "Record":
        """Validate a raw dict into a Record, raising DataError(where, field, expected) on the first problem.

        Numbers given as answer are converted to strings; `meta`/`tests` may
        also arrive as JSON strings (parquet stores nested values that way).
        """
        if not isinstance(d, dict):
            raise DataError(where, "<record>", f"expected a JSON object, got {_type_name(d)}")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise DataError(where, sorted(unknown)[0], f"unknown field; allowed: {[f.name for f in dataclasses.fields(cls)]}")
        for name in ("id", "task", "prompt"):
            if d.get(name) is None:
                raise DataError(where, name, "missing (required)")
        rid = d["id"]
        if isinstance(rid, int) and not isinstance(rid, bool):
            rid = str(rid)
        if not isinstance(rid, str) or not rid:
            raise DataError(where, "id", f"expected a non-empty string, got {rid!r}")
        task = d["task"]
        if not isinstance(task, str) or not task:
            raise DataError(where, "task", f"expected a non-empty string such as {sorted(TASK_REQUIREMENTS)}, got {task!r}")
        prompt = _check_prompt(d["prompt"], where)

        images = d.get("images")
        images = [] if images is None else images
        if not isinstance(images, (list, tuple)):
            raise DataError(where, "images", f"expected a list of image references, got {_type_name(images)}")
        for i, im in enumerate(images):
            if not _is_image_ref(im):
                raise DataError(where, f"images[{i}]", f"expected a path, base64 data URI, bytes, {{bytes, path}} dict or PIL image, got {_type_name(im)}")
        n_placeholders = prompt.count("<image>") if isinstance(prompt, str) else Record(rid, task, prompt).prompt_text.count("<image>")
        if n_placeholders > len(images):
            raise DataError(where, "images", f"prompt has {n_placeholders} <image> placeholders but {len(images)} images")

        answer = d.get("answer", "")
        answer = "" if answer is None else answer
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            answer = str(answer)
        if not isinstance(answer, str):
            raise DataError(where, "answer", f"expected a string, got {_type_name(answer)}")

        choices = d.get("choices")
        if choices is not None:
            if not isinstance(choices, (list, tuple)) or not all(isinstance(c, str) for c in choices) or not choices:
                raise DataError(where, "choices", "expected a non-empty list of strings")
            if len(choices) > len(LETTERS):
                raise DataError(where, "choices", f"at most {len(LETTERS)} choices, got {len(choices)}")
            choices = list(choices)

        tests = _check_tests(d.get("tests"), where)
        meta = d.get("meta")
        meta = {} if meta is None else meta
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except json.JSONDecodeError as e:
                raise DataError(where, "meta", f"expected a dict or a JSON object string ({e})") from None
        if not isinstance(meta, dict):
            raise DataError(where, "meta", f"expected a dict, got {_type_name(meta)}")

        rec = cls(rid, task, prompt, list(images), answer, choices, tests, dict(meta))
        rec._check_task_requirements(where)
        return rec

    def _check_task_requirements(self, where: str) -> None:
        spec = tasks.get(self.task)
        for name in spec.requires if spec is not None else TASK_REQUIREMENTS.get(self.task, ()):
            if not getattr(self, name):
                raise DataError(where, name, f"required for task {self.task!r} (non-empty)")
        if self.task == "mcq":
            letters = LETTERS[: len(self.choices)]
            if self.answer.strip() not in letters:
                raise DataError(where, "answer", f"task 'mcq' expects one of the letters {list(letters)}, got {self.answer!r}")

    def to_dict(self) -> dict:
        """JSON-able dict: path images stay paths, in-memory images become base64 data URIs."""
        return {
            "id": self.id, "task": self.task, "prompt": self.prompt,
            "images": [image_ref_to_json(im) for im in self.images],
            "answer": self.answer, "choices": self.choices, "tests": self.tests, "meta": self.meta,
        }


def image_ref_to_json(ref: Any) -> str:
    """A JSON-able form of an image reference: a path or a `data:image/...;base64,` URI."""
    if isinstance(ref, str):
        return ref
    if isinstance(ref, dict):
        if ref.get("bytes") is not None:
            return _data_uri(bytes(ref["bytes"]))
        return str(ref["path"])
    if isinstance(ref, (bytes, bytearray)):
        return _data_uri(bytes(ref))
    import io

    buf = io.BytesIO()
    ref.save(buf, format="PNG")
    return _data_uri(buf.getvalue())


def _data_uri(data: bytes) -> str:
    kind = "png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "jpeg" if data[:3] == b"\xff\xd8\xff" else "octet-stream"
    return f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}"


def _check_prompt(prompt: Any, where: str) -> str | list[dict]:
    if isinstance(prompt, str) and prompt.lstrip().startswith("[{"):
        try:  # chat messages stored as a JSON string (parquet / HF columns cannot mix text and lists)
            decoded = json.loads(prompt)
        except json.JSONDecodeError:
            decoded = None
        if isinstance(decoded, list) and all(isinstance(m, dict) and "role" in m for m in decoded):
            prompt = decoded
    if isinstance(prompt, str):
        if not prompt.strip():
            raise DataError(where, "prompt", "expected non-empty text")
        return prompt
    if not isinstance(prompt, list) or not prompt:
        raise DataError(where, "prompt", f"expected text or a non-empty list of chat messages, got {_type_name(prompt)}")
    for i, m in enumerate(prompt):
        if not isinstance(m, dict) or m.get("role") not in {"system", "user", "assistant"}:
            raise DataError(where, f"prompt[{i}]", "expected a message {'role': system|user|assistant, 'content': ...}")
        c = m.get("content")
        if isinstance(c, str):
            continue
        if not isinstance(c, list) or not all(isinstance(p, dict) and p.get("type") in {"text", "image"} for p in c):
            raise DataError(where, f"prompt[{i}].content", "expected a string or a list of {'type': 'text'|'image', ...} parts")
        if any(p.get("type") == "image" for p in c):
            raise DataError(where, f"prompt[{i}].content", "image parts go in the record's `images` with <image> placeholders in the text")
    return [dict(m) for m in prompt]


def _check_tests(tests: Any, where: str) -> list[str] | dict | None:
    if tests is None:
        return None
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except json.JSONDecodeError:
            tests = [tests]
        if tests is None:
            return None
    if isinstance(tests, (list, tuple)):
        if not all(isinstance(t, str) for t in tests):
            raise DataError(where, "tests", "expected a list of Python test snippets (strings)")
        return list(tests)
    if isinstance(tests, dict):
        ins, outs = tests.get("inputs"), tests.get("outputs")
        if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs) or not ins:
            raise DataError(where, "tests", "expected {'inputs': [...], 'outputs': [...]} of equal non-zero length (optional 'fn_name')")
        fn = tests.get("fn_name")
        if fn is not None and (not isinstance(fn, str) or not fn):
            raise DataError(where, "tests.fn_name", "expected a function name string")
        return dict(tests)
    raise DataError(where, "tests", f"expected a list of test snippets or an inputs/outputs dict, got {_type_name(tests)}")
