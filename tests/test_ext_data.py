"""Records -> OpenRLHF PromptDataset JSONL: what OpenRLHF reads back is the prompt, images and label we meant."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from PIL import Image

from riskpo_mm.data.record import Record
from riskpo_mm.openrlhf_ext import compat
from riskpo_mm.openrlhf_ext.advantages import parse_label
from riskpo_mm.openrlhf_ext.data import openrlhf_row, prompt_messages, write_openrlhf_jsonl


def _records(tmp_path):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "fig.png")
    return [
        Record(id="geo-1", task="geometry", prompt="In the figure <image> find x.", images=["fig.png"], answer="3"),
        Record(id="mcq-1", task="mcq", prompt="Which is even?", images=["fig.png"], answer="B", choices=["1", "2"]),
        Record(
            id="code-1",
            task="code",
            prompt=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Write f."}],
            tests=["assert f() == 1"],
        ),
    ]


def test_rows_carry_image_marks_absolute_images_and_a_json_label(tmp_path):
    geo, mcq, code = _records(tmp_path)
    row = openrlhf_row(geo, base_dir=tmp_path)
    assert row["prompt"][0]["content"].startswith("In the figure <image> find x.")
    assert row["images"] == [str((tmp_path / "fig.png").resolve())]
    assert json.loads(row["label"]) == {"uid": "geo-1", "task": "geometry", "answer": "3", "choices": None, "tests": None}
    mcq_text = prompt_messages(mcq)[0]["content"]
    assert mcq_text.startswith("<image>Which is even?") and "B. 2" in mcq_text  # unplaced image leads
    chat = prompt_messages(code)
    assert chat[0] == {"role": "system", "content": "Be brief."} and chat[1]["content"].startswith("Write f.\n\n")
    assert parse_label(openrlhf_row(code)["label"])["tests"] == ["assert f() == 1"]


def test_too_many_image_marks_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="2 <image> marks but only 1 images"):
        prompt_messages(Record(id="x", task="math", prompt="<image><image>?", images=["a.png"], answer="1"))


def test_duplicate_ids_are_rejected(tmp_path):
    rec = Record(id="same", task="math", prompt="1+1?", answer="2")
    with pytest.raises(ValueError, match="duplicate record id 'same'"):
        write_openrlhf_jsonl([rec, rec], tmp_path / "d.jsonl")


def test_openrlhfs_prompt_dataset_reads_the_written_file(tmp_path):
    compat.install()
    from transformers import AutoTokenizer
    from openrlhf.datasets import PromptDataset
    from openrlhf.datasets.utils import blending_datasets
    from riskpo_mm.models.tiny import make_tiny_text_model

    flags = write_openrlhf_jsonl(_records(tmp_path), tmp_path / "train.jsonl", base_dir=tmp_path)
    assert flags["data.max_images_per_prompt"] == 1 and flags["data.label_key"] == "label"
    tokenizer = AutoTokenizer.from_pretrained(make_tiny_text_model("xs", out_dir=tmp_path / "model"))
    data_args = SimpleNamespace(**{k.split(".", 1)[1]: v for k, v in flags.items()})
    strategy = SimpleNamespace(args=SimpleNamespace(data=data_args), is_rank_0=lambda: True, print=lambda *a: None)
    data = blending_datasets(flags["data.prompt_dataset"], None, strategy)
    dataset = PromptDataset(data, tokenizer, strategy)
    _, prompt, label, images = dataset[0]
    assert "find x." in prompt and "<|im_start|>assistant" in prompt
    assert parse_label(label)["uid"] == "geo-1" and images == [str((tmp_path / "fig.png").resolve())]
    assert [parse_label(dataset[i][2])["uid"] for i in range(3)] == ["geo-1", "mcq-1", "code-1"]
    assert dataset[2][3] == []
