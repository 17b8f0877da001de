"""Shared pieces of the engine tests: tiny runs whose rewards carry signal from a random policy."""

from __future__ import annotations

import json
from pathlib import Path

from riskpo_mm.config import RunConfig, validate_config
from riskpo_mm.rewards import GradeOutcome, register_task

# A random policy scores about half of these: the grade is the parity of the response length.
PARITY_TASK = "parity"


def parity_grade(record, response: str) -> GradeOutcome:
    return GradeOutcome(accuracy=float(len(response) % 2), format_ok=True, reason="parity")


register_task(PARITY_TASK, parity_grade)


def write_records(path: Path, n: int, with_images: bool, image_dir: Path | None = None) -> Path:
    """`n` parity records; every other one with a small image when `with_images`."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        row = {"id": f"r{i}", "task": PARITY_TASK, "prompt": f"Say something about {i}.", "answer": "x"}
        if with_images and i % 2 == 0:
            img = (image_dir or path.parent) / f"img{i}.png"
            size = (56 + 28 * (i % 3), 56 + 28 * ((i // 2) % 2))  # different image token counts
            Image.new("RGB", size, (40 * (i % 6), 90, 200)).save(img)
            row.update(prompt=f"<image>What is shown in picture {i}?", images=[img.name])
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n")
    return path


def run_config(root: Path, name: str, *, family: str = "qwen2_5_vl", text_model: bool = False,
               estimator: str = "riskpo", prompts: int = 5, n: int = 2, steps: int = 2, images: bool = True,
               backend: str = "hf", **sections) -> RunConfig:
    """A tiny local-engine run under `root`: xs model, 8 new tokens, float32, HF or vLLM rollouts."""
    model_dir = root / ("text_model" if text_model else f"model_{family}")
    if not (model_dir / "config.json").exists():
        from riskpo_mm.models import make_tiny_model, make_tiny_text_model

        if text_model:
            make_tiny_text_model("xs", "compact", model_dir)
        else:
            make_tiny_model(family, "xs", "compact", model_dir)
    data = root / f"data_{'img' if images else 'txt'}" / "train.jsonl"
    if not data.exists():
        write_records(data, 20, with_images=images)
    raw = {
        "name": name,
        "output_dir": str(root / "{name}"),
        "model": {"path": str(model_dir)},
        "data": {"train": [str(data)], "max_pixels": 12544},
        "rollout": {"prompts_per_step": prompts, "n_samples_per_prompt": n, "max_new_tokens": 8, "backend": backend},
        "algorithm": {"estimator": estimator},
        "train": {"steps": steps, "lr": 1e-3, "micro_batch_size": n},
        "eval": {"before_and_after": False},
        "checkpoint": {"every_steps": 1},
        "logging": {"tensorboard": False},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return validate_config(raw)
