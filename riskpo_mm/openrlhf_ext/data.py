"""Records -> the JSONL that OpenRLHF's ``PromptDataset`` reads for the Ray engine.

One line per record::

    {"prompt": [{"role": "user", "content": "<image>Find x. ... \\boxed{}."}],
     "images": ["/abs/path/fig.png"],
     "label": "{\\"uid\\": \\"geo-1\\", \\"task\\": \\"geometry\\", \\"answer\\": \\"3\\", ...}"}

- ``prompt``: chat messages with string contents; ``<image>`` marks each image (images a record
  does not place go first), and the task's choices/instruction are appended to the last user
  turn as in ``riskpo_mm.data.templates``. OpenRLHF turns the marks into image parts when
  ``--data.apply_chat_template`` is on.
- ``images``: absolute paths or ``data:image/...;base64,`` URIs (``--data.image_key images``).
- ``label``: a JSON *string* (so HF ``datasets`` does not unify or drop keys across rows) with
  ``uid`` (the record id, which RiskPO groups by), ``task``, ``answer``, ``choices``, ``tests``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from riskpo_mm.data.images import resolve_image_path
from riskpo_mm.data.record import Record, image_ref_to_json
from riskpo_mm.data.templates import IMAGE_PLACEHOLDER, format_choices, instruction_for, prompt_text

INPUT_KEY = "prompt"
LABEL_KEY = "label"
IMAGE_KEY = "images"


def label_for(record: Record, reward: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the reward and the experience maker need to know about a record (and the run's reward
    settings, see `riskpo_mm.rewards.openrlhf_reward`)."""
    label = {
        "uid": record.id,
        "task": record.task,
        "answer": record.answer,
        "choices": record.choices,
        "tests": record.tests,
    }
    if reward:
        label["reward"] = reward
    return label


def _image_json(ref: Any, base_dir: str | os.PathLike | None) -> str:
    ref = image_ref_to_json(ref)
    if ref.startswith("data:"):
        return ref
    return resolve_image_path(ref, base_dir)


def prompt_messages(record: Record, instructions: dict[str, str] | None = None,
                    system_prompt: str | None = None) -> list[dict[str, str]]:
    """Chat messages with ``<image>`` marks for every image of the record (``system_prompt`` first
    unless the record's chat has a system turn, as `riskpo_mm.data.templates.build_messages` does)."""
    messages = _prompt_messages(record, instructions)
    if system_prompt and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def _prompt_messages(record: Record, instructions: dict[str, str] | None) -> list[dict[str, str]]:
    unplaced = len(record.images) - record.prompt_text.count(IMAGE_PLACEHOLDER)
    if unplaced < 0:
        raise ValueError(
            f"record {record.id}: prompt has {record.prompt_text.count(IMAGE_PLACEHOLDER)} {IMAGE_PLACEHOLDER} marks "
            f"but only {len(record.images)} images"
        )
    lead = IMAGE_PLACEHOLDER * unplaced
    if isinstance(record.prompt, str):
        return [{"role": "user", "content": lead + prompt_text(record, instructions)}]
    messages = []
    users = [i for i, m in enumerate(record.prompt) if m["role"] == "user"]
    if not users:
        raise ValueError(f"record {record.id}: chat prompt has no user message")
    for i, m in enumerate(record.prompt):
        content = m["content"]
        text = content if isinstance(content, str) else "\n".join(p["text"] for p in content if p["type"] == "text")
        if i == users[-1]:
            extra = [format_choices(record.choices)] if record.choices else []
            extra += [instruction_for(record.task, instructions)]
            text = "\n\n".join([text, *[e for e in extra if e]])
        if i == users[0]:
            text = lead + text
        messages.append({"role": m["role"], "content": text})
    return messages


def openrlhf_row(
    record: Record,
    base_dir: str | os.PathLike | None = None,
    instructions: dict[str, str] | None = None,
    reward: dict[str, Any] | None = None,
    system_prompt: str | None = None,
) -> dict[str, Any]:
    """One PromptDataset row for ``record`` (relative image paths are taken from ``base_dir``)."""
    return {
        INPUT_KEY: prompt_messages(record, instructions, system_prompt),
        IMAGE_KEY: [_image_json(ref, base_dir) for ref in record.images],
        LABEL_KEY: json.dumps(label_for(record, reward), ensure_ascii=False),
    }


def write_openrlhf_jsonl(
    records: Iterable[Record],
    path: str | os.PathLike,
    base_dir: str | os.PathLike | None = None,
    instructions: dict[str, str] | None = None,
    reward: dict[str, Any] | None = None,
    system_prompt: str | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Write the dataset (atomically) and return the OpenRLHF data flags that read it.

    The flags (dotted names, for ``flags.to_openrlhf_args``): ``data.prompt_dataset``,
    ``data.input_key``, ``data.label_key``, ``data.image_key``, ``data.apply_chat_template``,
    ``data.max_images_per_prompt`` (0 for a text-only dataset).
    """
    path = os.fspath(path)
    if write:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}" if write else os.devnull
    max_images = 0
    seen: set[str] = set()
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            if record.id in seen:
                raise ValueError(f"{path}: duplicate record id {record.id!r}; RiskPO groups samples by id")
            seen.add(record.id)
            row = openrlhf_row(record, base_dir, instructions, reward, system_prompt)
            max_images = max(max_images, len(row[IMAGE_KEY]))
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    if write:
        os.replace(tmp, path)
    return {
        "data.prompt_dataset": path,
        "data.input_key": INPUT_KEY,
        "data.label_key": LABEL_KEY,
        "data.image_key": IMAGE_KEY,
        "data.apply_chat_template": True,
        "data.max_images_per_prompt": max_images,
    }
