"""Prompt templates per task and the record -> chat messages step.

Every task asks for reasoning inside <think>...</think> and a final answer the
reward can parse: \\boxed{} for math/geometry/numeric, the choice letter in
\\boxed{} for multiple choice, one ```python block for code. Unknown
(user-registered) tasks get the math instruction unless `instructions` maps
them to their own text.

Text prompts: "<image>" placeholders mark where each image goes; images
without a placeholder go first. Chat-message prompts are used as written
(placeholders expanded the same way); the instruction is appended to the last
user turn.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from riskpo_mm import tasks

from .images import load_image
from .record import LETTERS, Record

THINK = "Think step by step inside <think> </think>, then "
INSTRUCTIONS: dict[str, str] = {
    "math": THINK + "give the final answer in \\boxed{}.",
    "geometry": THINK + "give the final answer in \\boxed{}.",
    "numeric": THINK + "give the final number in \\boxed{}.",
    "mcq": THINK + "give the letter of the correct choice in \\boxed{}, e.g. \\boxed{A}.",
    "code": THINK + "write the complete solution in one ```python code block.",
}
IMAGE_PLACEHOLDER = "<image>"


def format_choices(choices: list[str]) -> str:
    """'Choices: A, B, C' when options are their own letters, else one 'A. text' line per option."""
    letters = LETTERS[: len(choices)]
    if list(choices) == list(letters):
        return "Choices: " + ", ".join(letters)
    return "Choices:\n" + "\n".join(f"{l}. {c}" for l, c in zip(letters, choices))


def instruction_for(task: str, instructions: dict[str, str] | None = None) -> str:
    """The task's instruction: `instructions` (a config's), a registered TaskSpec's, the built-in one, else math's."""
    if instructions and task in instructions:
        return instructions[task]
    spec = tasks.get(task)
    if spec is not None and spec.instruction is not None:
        return spec.instruction
    return INSTRUCTIONS.get(task, (instructions or {}).get("math", INSTRUCTIONS["math"]))


def prompt_text(record: Record, instructions: dict[str, str] | None = None) -> str:
    """The user text of a text-prompt record: question, choices, instruction (placeholders kept)."""
    parts = [record.prompt.strip() if isinstance(record.prompt, str) else record.prompt_text.strip()]
    if record.choices:
        parts.append(format_choices(record.choices))
    inst = instruction_for(record.task, instructions)
    if inst:
        parts.append(inst)
    return "\n\n".join(parts)


def build_messages(
    record: Record,
    system_prompt: str | None = None,
    images: list[Image.Image] | None = None,
    instructions: dict[str, str] | None = None,
) -> list[dict]:
    """HF chat messages with {"type": "image", "image": PIL} / {"type": "text"} parts.

    images: already loaded (e.g. resized) images in record order; loaded from
    record.images when None. Text-only records get plain text parts.
    """
    if images is None:
        images = [load_image(ref) for ref in record.images]
    if len(images) != len(record.images):
        raise ValueError(f"record {record.id}: {len(images)} images given for {len(record.images)} references")
    queue = list(images)
    n_marked = record.prompt_text.count(IMAGE_PLACEHOLDER)
    leading = [_image_part(im) for im in queue[: len(queue) - n_marked]]
    marked = queue[len(queue) - n_marked:]
    messages: list[dict] = []
    if system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    if isinstance(record.prompt, str):
        parts = leading + _split_placeholders(prompt_text(record, instructions), marked)
        messages.append({"role": "user", "content": parts})
        return messages
    chat = [dict(m) for m in record.prompt]
    if system_prompt and any(m["role"] == "system" for m in chat):
        messages = []
    last_user = max(i for i, m in enumerate(chat) if m["role"] == "user") if any(m["role"] == "user" for m in chat) else None
    first_user = next((i for i, m in enumerate(chat) if m["role"] == "user"), None)
    if first_user is None:
        raise ValueError(f"record {record.id}: chat prompt has no user message")
    for i, m in enumerate(chat):
        texts = [m["content"]] if isinstance(m["content"], str) else [p["text"] for p in m["content"] if p["type"] == "text"]
        text = "\n".join(texts)
        if i == last_user and record.choices:
            text += "\n\n" + format_choices(record.choices)
        if i == last_user and instruction_for(record.task, instructions):
            text += "\n\n" + instruction_for(record.task, instructions)
        parts = (leading if i == first_user else []) + _split_placeholders(text, marked)
        messages.append({"role": m["role"], "content": parts})
    return messages


def _image_part(im: Image.Image) -> dict[str, Any]:
    return {"type": "image", "image": im}


def _split_placeholders(text: str, queue: list[Image.Image]) -> list[dict]:
    """Split text at <image> marks, consuming images from the front of queue (in place)."""
    pieces = text.split(IMAGE_PLACEHOLDER)
    parts: list[dict] = []
    for k, piece in enumerate(pieces):
        if k > 0:
            parts.append(_image_part(queue.pop(0)))
        if piece.strip():
            parts.append({"type": "text", "text": piece})
    return parts
