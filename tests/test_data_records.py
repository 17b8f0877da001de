"""Records, loaders (JSONL / parquet / HF folders, mixtures, bad-record policy) and image handling."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from PIL import Image

from riskpo_mm.data import DataError, ImageConfig, ImageError, Record, load_image, load_records, register_task_name, resize_image
from riskpo_mm.data.images import image_factor, num_image_tokens
from riskpo_mm.data.samples import write_record_samples

from data_helpers import png


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _rec(i: int, **kw) -> dict:
    return {"id": f"r{i}", "task": "math", "prompt": f"What is {i} + 1?", "answer": str(i + 1), **kw}


# ------------------------------------------------------------------ Record


def test_record_from_dict_accepts_every_field_and_round_trips_to_json(tmp_path):
    d = {"id": "a", "task": "mcq", "prompt": "<image>Pick one.", "images": [png(tmp_path / "a.png")],
         "answer": "B", "choices": ["x", "y"], "tests": None, "meta": {"level": 1}}
    rec = Record.from_dict(d)
    assert rec.choices == ["x", "y"] and rec.meta == {"level": 1}
    assert Record.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec


def test_record_to_dict_turns_in_memory_images_into_base64_data_uris():
    rec = Record("a", "geometry", "<image>x?", [Image.new("RGB", (8, 8), "red")], "1")
    uri = rec.to_dict()["images"][0]
    assert uri.startswith("data:image/png;base64,")
    assert load_image(uri).getpixel((0, 0)) == (255, 0, 0)


@pytest.mark.parametrize("bad, field", [
    ({"task": "math", "prompt": "q", "answer": "1"}, "id"),
    ({"id": "a", "prompt": "q", "answer": "1"}, "task"),
    ({"id": "a", "task": "math", "answer": "1"}, "prompt"),
    ({"id": "a", "task": "math", "prompt": 5, "answer": "1"}, "prompt"),
    ({"id": "a", "task": "math", "prompt": "q", "answer": ["1"]}, "answer"),
    ({"id": "a", "task": "math", "prompt": "q"}, "answer"),
    ({"id": "a", "task": "mcq", "prompt": "q", "answer": "A"}, "choices"),
    ({"id": "a", "task": "mcq", "prompt": "q", "answer": "C", "choices": ["x", "y"]}, "answer"),
    ({"id": "a", "task": "code", "prompt": "q", "tests": [1, 2]}, "tests"),
    ({"id": "a", "task": "code", "prompt": "q"}, "tests"),
    ({"id": "a", "task": "math", "prompt": "<image>q", "answer": "1"}, "images"),
    ({"id": "a", "task": "math", "prompt": "q", "answer": "1", "images": "x.png"}, "images"),
    ({"id": "a", "task": "math", "prompt": "q", "answer": "1", "meta": [1]}, "meta"),
    ({"id": "a", "task": "math", "prompt": "q", "answer": "1", "extra": 1}, "extra"),
])
def test_invalid_record_names_the_field(bad, field):
    with pytest.raises(DataError) as e:
        Record.from_dict(bad, where="f.jsonl:3")
    assert e.value.field == field and "f.jsonl:3" in str(e.value)


def test_user_task_names_are_accepted_and_registered_ones_validated():
    assert Record.from_dict({"id": "a", "task": "chart", "prompt": "q"}).task == "chart"
    register_task_name("table_qa", requires=("answer",))
    with pytest.raises(DataError, match="table_qa"):
        Record.from_dict({"id": "a", "task": "table_qa", "prompt": "q"})


# ------------------------------------------------------------------ loaders


def test_jsonl_parquet_and_hf_folder_load_the_same_records(tmp_path):
    paths = write_record_samples(tmp_path)
    loaded = {k: load_records(p) for k, p in paths.items()}
    ids = [r.id for r in loaded["jsonl"]]
    assert len(ids) == 6
    for kind in ("parquet", "hf"):
        assert [r.id for r in loaded[kind]] == ids
        for a, b in zip(loaded["jsonl"], loaded[kind]):
            assert (a.task, a.prompt, a.answer, a.choices, a.tests, a.meta) == (b.task, b.prompt, b.answer, b.choices, b.tests, b.meta)
            assert [load_image(x).tobytes() for x in a.images] == [load_image(x).tobytes() for x in b.images]


def test_relative_image_paths_resolve_against_the_data_file_folder(tmp_path):
    (tmp_path / "sub" / "imgs").mkdir(parents=True)
    png(tmp_path / "sub" / "imgs" / "a.png")
    f = _write_jsonl(tmp_path / "sub" / "d.jsonl", [_rec(0, images=["imgs/a.png"], prompt="<image>q")])
    rec = load_records(f)[0]
    assert Path(rec.images[0]) == (tmp_path / "sub" / "imgs" / "a.png").resolve()


def _bad_file(tmp_path) -> Path:
    png(tmp_path / "ok.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    f = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps(_rec(0)).encode(),                                          # 1 ok
        json.dumps({"id": "r1", "task": "math", "answer": "1"}).encode(),     # 2 missing prompt
        json.dumps(_rec(2, answer=[1])).encode(),                             # 3 wrong type
        json.dumps(_rec(3, images=["nope.png"])).encode(),                    # 4 missing image
        json.dumps(_rec(4, images=["corrupt.png"])).encode(),                 # 5 corrupt image
        b'{"id": "r5", "task": "math", "prompt": "caf\xe9", "answer": "1"}',  # 6 not UTF-8
        b"{not json",                                                          # 7 invalid JSON
        json.dumps(_rec(0)).encode(),                                          # 8 duplicate id
        json.dumps(_rec(8, images=["ok.png"])).encode(),                       # 9 ok
    ]
    f.write_bytes(b"\n".join(lines) + b"\n")
    return f


def test_bad_record_raises_naming_file_line_and_field(tmp_path):
    f = _bad_file(tmp_path)
    with pytest.raises(DataError) as e:
        load_records(f)
    assert e.value.where == f"{f}:2" and e.value.field == "prompt" and "missing" in str(e.value)


def test_skip_policy_counts_and_reports_every_bad_record(tmp_path):
    rs = load_records(_bad_file(tmp_path), on_bad_record="skip")
    assert [r.id for r in rs] == ["r0", "r8"]
    assert rs.skipped == 7
    assert [(b.line, b.field) for b in rs.bad] == [
        (2, "prompt"), (3, "answer"), (4, "images[0]"), (5, "images[0]"), (6, "<line>"), (7, "<line>"), (8, "id")]
    assert "not found" in rs.bad[2].message and "corrupt" in rs.bad[3].message and "UTF-8" in rs.bad[4].message
    assert "7 skipped" in rs.summary()


def test_parquet_bad_row_is_reported_by_row_number(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist([_rec(0), {**_rec(1), "prompt": ""}]), f)
    with pytest.raises(DataError, match=r"d.parquet row 1: field 'prompt'"):
        load_records(f)


def test_hf_dataset_dict_folder_asks_for_a_split(tmp_path):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list([_rec(0)])}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match="train"):
        load_records(tmp_path / "dd")
    assert load_records(tmp_path / "dd" / "train")[0].id == "r0"


def test_unweighted_sources_concatenate_in_order(tmp_path):
    a = _write_jsonl(tmp_path / "a.jsonl", [_rec(i) for i in range(3)])
    b = _write_jsonl(tmp_path / "b.jsonl", [_rec(i) for i in range(10, 12)])
    assert [r.id for r in load_records([a, b])] == ["r0", "r1", "r2", "r10", "r11"]


def test_weighted_mixture_follows_weights_and_is_seeded(tmp_path):
    a = _write_jsonl(tmp_path / "a.jsonl", [_rec(i) for i in range(20)])
    b = _write_jsonl(tmp_path / "b.jsonl", [_rec(i) for i in range(100, 400)])
    mix = load_records([a, b], weights=[3.0, 1.0], seed=1, num_samples=2000)
    share_a = sum(int(r.id[1:]) < 100 for r in mix) / len(mix)
    assert 0.71 < share_a < 0.79  # 0.75 expected; 1.7 sigma of noise is 0.016
    assert len({r.id for r in mix if int(r.id[1:]) < 100}) == 20  # the small source is cycled, not repeated early
    again = load_records([a, b], weights=[3.0, 1.0], seed=1, num_samples=2000)
    assert [r.id for r in mix] == [r.id for r in again]
    assert [r.id for r in load_records([a, b], weights=[3.0, 1.0], seed=2, num_samples=2000)] != [r.id for r in mix]
    with pytest.raises(ValueError, match="2 sources"):
        load_records([a, b], weights=[1.0])


# ------------------------------------------------------------------ images


def test_load_image_accepts_path_bytes_base64_and_hf_dicts(tmp_path):
    p = png(tmp_path / "x.png", color="red")
    raw = Path(p).read_bytes()
    b64 = base64.b64encode(raw).decode()
    ref = load_image(p)
    for other in (load_image("x.png", base_dir=tmp_path), load_image(raw), load_image({"bytes": raw, "path": None}),
                  load_image({"bytes": None, "path": p}), load_image(f"data:image/png;base64,{b64}"), load_image(b64),
                  load_image("file://" + p)):
        assert other.mode == "RGB" and other.tobytes() == ref.tobytes()


def test_load_image_refuses_urls_and_reports_missing_or_corrupt_files(tmp_path):
    with pytest.raises(ImageError, match="no network"):
        load_image("https://example.com/a.png")
    with pytest.raises(ImageError, match="not found"):
        load_image("missing.png", base_dir=tmp_path)
    with pytest.raises(ImageError, match="cannot decode"):
        load_image(b"garbage")


@pytest.mark.parametrize("family, factor", [("qwen2_vl", 28), ("qwen2_5_vl", 28), ("qwen3_vl", 32), ("qwen3_5", 32)])
def test_resize_uses_the_family_patch_size_and_pixel_bounds(family, factor):
    assert image_factor(family) == factor
    img = Image.new("RGB", (1000, 700))
    cfg = ImageConfig()
    out = resize_image(img, family, cfg.min_pixels, cfg.max_pixels)
    w, h = out.size
    assert w % factor == 0 and h % factor == 0 and w * h <= cfg.max_pixels
    assert abs(w / h - 1000 / 700) < 0.1
    small = resize_image(Image.new("RGB", (20, 20)), family, cfg.min_pixels, cfg.max_pixels)
    assert small.size[0] * small.size[1] >= cfg.min_pixels
    assert num_image_tokens(out, family) == (w // factor) * (h // factor)


def test_image_config_rejects_inverted_bounds():
    with pytest.raises(ValueError, match="min_pixels"):
        ImageConfig(min_pixels=100, max_pixels=10)


def test_committed_samples_under_data_all_load():
    root = Path(__file__).resolve().parents[1] / "data"
    sources = sorted(root.glob("*/*.jsonl")) + [root / "records" / "sample.parquet", root / "records" / "sample_hf"]
    assert len(sources) >= 12
    for src in sources:
        assert len(load_records(src)) > 0, src


def test_a_record_with_an_unknown_task_is_rejected_at_load_time_with_the_closest_task(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"id": "a", "task": "math", "prompt": "1+1?", "answer": "2"}) + "\n"
                    + json.dumps({"id": "b", "task": "maths", "prompt": "1+2?", "answer": "3"}) + "\n")
    with pytest.raises(DataError) as err:
        load_records(path)
    text = str(err.value)
    assert f"{path}:2" in text and "field 'task'" in text and "unknown task 'maths'" in text
    assert "did you mean 'math'?" in text and "geometry" in text and "mcq" in text
    skipped = load_records(path, on_bad_record="skip")
    assert [r.id for r in skipped] == ["a"] and skipped.bad[0].field == "task"


def test_load_records_limit_reads_a_sample_of_each_source(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "task": "math", "prompt": "q", "answer": "1"}) + "\n"
                            for i in range(10)))
    assert len(load_records(path, limit=3)) == 3
