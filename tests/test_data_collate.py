"""Prompt templates and model-ready batches: mixed text/image records, rollout == training vision inputs."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from qwen_vl_utils import smart_resize

from riskpo_mm.data import ImageConfig, Record, build_messages, encode_prompts, load_records
from riskpo_mm.data.collate import PromptCollator, PromptDataset, image_token_id
from riskpo_mm.data.images import image_factor
from riskpo_mm.data.samples import write_record_samples

from data_helpers import processor_for

TINY = ImageConfig(min_pixels=56 * 56, max_pixels=168 * 168)


def _mixed() -> list[Record]:
    return [
        Record("img-wide", "geometry", "<image>Find x.", [Image.new("RGB", (150, 90), "white")], "3"),
        Record("text", "math", "What is 2 + 2?", [], "4"),
        Record("two", "mcq", "Compare <image> with <image>.", [Image.new("RGB", (60, 60)), Image.new("RGB", (120, 170))], "A", ["first", "second"]),
        Record("code", "code", "Write f(x) returning x.", [], "def f(x): return x", ["assert f(1) == 1"]),
    ]


def test_templates_ask_for_think_and_the_task_answer_format():
    mcq = build_messages(Record("m", "mcq", "Which?", [], "B", ["cat", "dog"]))[0]["content"]
    assert mcq == [{"type": "text", "text": mcq[0]["text"]}]
    assert "A. cat\nB. dog" in mcq[0]["text"] and "<think>" in mcq[0]["text"] and "\\boxed{A}" in mcq[0]["text"]
    code = build_messages(Record("c", "code", "Write f.", [], "", None, ["assert f()"]))[0]["content"][0]["text"]
    assert "```python" in code
    math = build_messages(Record("x", "math", "1+1?", [], "2"), system_prompt="Be brief.")
    assert math[0] == {"role": "system", "content": [{"type": "text", "text": "Be brief."}]} and "\\boxed{}" in math[1]["content"][0]["text"]


def test_image_placeholders_place_images_and_unmarked_images_go_first():
    a, b, c = (Image.new("RGB", (28, 28), col) for col in ("red", "green", "blue"))
    parts = build_messages(Record("r", "geometry", "Left <image> right <image>", [a, b, c], "1"), images=[a, b, c])[0]["content"]
    assert [p["type"] for p in parts] == ["image", "text", "image", "text", "image", "text"]
    assert parts[0]["image"] is a and parts[2]["image"] is b and parts[4]["image"] is c
    assert parts[1]["text"] == "Left " and parts[3]["text"] == " right "


def test_chat_prompts_keep_their_turns_and_get_the_instruction_on_the_last_user_turn():
    chat = [{"role": "system", "content": "Own system."}, {"role": "user", "content": "<image>What angle?"}]
    msgs = build_messages(Record("c", "geometry", chat, [Image.new("RGB", (28, 28))], "90"), system_prompt="ignored")
    assert [m["role"] for m in msgs] == ["system", "user"] and msgs[0]["content"][0]["text"] == "Own system."
    assert msgs[1]["content"][0]["type"] == "image" and "\\boxed{}" in msgs[1]["content"][1]["text"]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_mixed_batch_is_left_padded_with_one_placeholder_per_merged_patch(family):
    proc = processor_for(family)
    pb = encode_prompts(_mixed(), proc, TINY, family)
    P, L = pb.input_ids.shape
    assert P == 4 and pb.attention_mask.shape == pb.mm_token_type_ids.shape == (P, L)
    assert bool((pb.attention_mask[:, -1] == 1).all())  # left padding: every prompt ends at the last column
    assert torch.equal(pb.mm_token_type_ids, (pb.input_ids == image_token_id(proc)).long())
    assert pb.image_counts == [1, 0, 2, 0] and pb.image_grid_thw.shape == (3, 3)
    f = image_factor(family)
    per_image = (pb.image_grid_thw.prod(-1) // 4).tolist()
    assert pb.mm_token_type_ids.sum(-1).tolist() == [per_image[0], 0, per_image[1] + per_image[2], 0]
    h, w = smart_resize(90, 150, factor=f, min_pixels=TINY.min_pixels, max_pixels=TINY.max_pixels)
    assert pb.image_grid_thw[0].tolist() == [1, h // (f // 2), w // (f // 2)]  # the qwen-vl-utils resize, untouched
    assert pb.pixel_values.shape[0] == pb.patch_offsets[-1] == int(pb.image_grid_thw.prod(-1).sum())
    assert pb.vision_inputs([1, 3]) == (None, None)


def test_image_token_count_and_grid_agree_between_rollout_and_training_inputs():
    """Rollout: one encoded prompt batch. Training: prompts + sampled responses, re-batched n times per
    prompt from the same PromptBatch. Both carry the same grids, pixels and placeholder counts, and equal
    what a fresh encode of each record alone gives."""
    family, proc = "qwen2_5_vl", processor_for("qwen2_5_vl")
    records = _mixed()
    rollout = encode_prompts(records, proc, TINY, family)
    n, pad = 2, proc.tokenizer.pad_token_id
    order = [i for i in range(len(records)) for _ in range(n)]  # n samples per prompt, contiguous
    gen = torch.Generator().manual_seed(0)
    seqs = [torch.cat([rollout.prompt_ids(i), torch.randint(0, 300, (int(torch.randint(3, 9, (1,), generator=gen)),), generator=gen)])
            for i in order]
    L = max(len(s) for s in seqs)
    input_ids = torch.stack([torch.cat([torch.full((L - len(s),), pad), s]) for s in seqs])  # [P*n, L]
    pixel_values, grid = rollout.vision_inputs(order)
    image_tok = image_token_id(proc)
    placeholders = (input_ids == image_tok).sum(-1)  # [P*n]
    grid_rows = torch.repeat_interleave(torch.arange(len(order)), torch.tensor([rollout.image_counts[i] for i in order]))
    expected = torch.zeros(len(order), dtype=torch.long).index_add_(0, grid_rows, grid.prod(-1) // 4)
    assert torch.equal(placeholders, expected)
    assert pixel_values.shape[0] == int(grid.prod(-1).sum())
    for i, rec in enumerate(records):
        alone = encode_prompts([rec], proc, TINY, family)
        assert torch.equal(alone.prompt_ids(0), rollout.prompt_ids(i))
        pv, g = alone.vision_inputs([0])
        pv_r, g_r = rollout.vision_inputs([i])
        assert (g is None and g_r is None) or (torch.equal(g, g_r) and torch.allclose(pv, pv_r))


def test_dataloader_with_workers_yields_the_same_batches(tmp_path):
    records = load_records(write_record_samples(tmp_path)["jsonl"])
    family = "qwen2_vl"
    collate = PromptCollator(processor_for(family), TINY, family)
    single = [collate(records[i:i + 3]) for i in (0, 3)]
    loader = torch.utils.data.DataLoader(PromptDataset(records), batch_size=3, num_workers=1, collate_fn=collate)
    for a, b in zip(single, loader):
        assert torch.equal(a.input_ids, b.input_ids) and a.image_counts == b.image_counts
        assert (a.pixel_values is None and b.pixel_values is None) or torch.equal(a.pixel_values, b.pixel_values)
