"""Tiny files in the real public layouts (and in riskpo-mm's own formats), for tests and data/.

`write_raw_samples(dir)` writes a few rows of every layout `riskpo-mm convert`
reads, with figures drawn by pillow; `write_record_samples(dir)` writes the same
mixed records as JSONL, parquet (images embedded as {bytes, path}) and an HF
dataset folder. `python -m riskpo_mm.data.samples DIR` regenerates data/.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw


def figure_png(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    """A small deterministic line drawing (a triangle and a label), PNG bytes."""
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    w, h = size
    d.polygon([(10 + seed % 20, h - 10), (w - 10, h - 10 - seed % 15), (w // 2, 10)], outline="black", width=2)
    d.text((w // 2 - 4, h // 2), str(seed % 10), fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def write_raw_samples(root: str | Path) -> dict[str, Path]:
    """One small input per converter format, in that dataset's published layout; returns format -> path."""
    root = Path(root)
    out: dict[str, Path] = {}

    out["geometry3k"] = root / "geometry3k" / "train-00000-of-00001.parquet"
    _parquet(out["geometry3k"], [
        {"images": [{"bytes": figure_png(1), "path": None}], "problem": "<image>Find x.", "answer": "3\\sqrt{2}"},
        {"images": [{"bytes": figure_png(2), "path": None}], "problem": "<image>Find the measure of \\angle 2.", "answer": "56"},
        {"images": [{"bytes": figure_png(3), "path": None}], "problem": "<image>Find y. Round to the nearest tenth.", "answer": "12.6"},
    ])

    geoqa = root / "geoqa"
    geoqa.mkdir(parents=True, exist_ok=True)
    for k, (q, choices, label) in enumerate([
        ("As shown in the figure, AB is parallel to CD, angle 1 = 50.0, then angle 2 is ()", ["40°", "50°", "130°", "140°"], 2),
        ("As shown in the figure, in circle O, angle AOB = 100.0, then the degree of angle ACB is ()", ["40°", "50°", "60°", "80°"], 1),
    ]):
        (geoqa / f"{k}.json").write_text(json.dumps({"id": k, "subject": "angle", "English problem": q, "choices": choices, "label": label}))
        (geoqa / f"{k}.png").write_bytes(figure_png(10 + k))
    out["geoqa"] = geoqa

    out["mathvista"] = root / "mathvista" / "testmini-00000-of-00001.parquet"
    meta = {"split": "testmini", "language": "english", "img_width": 160, "img_height": 120, "source": "Geometry3K",
            "category": "math-targeted-vqa", "task": "geometry problem solving", "context": "geometry diagram",
            "grade": "high school", "skills": ["geometry reasoning", "algebraic reasoning"]}
    _parquet(out["mathvista"], [
        {"pid": "1", "question": "Find x.", "image": "images/1.jpg", "decoded_image": {"bytes": figure_png(20), "path": "1.png"},
         "choices": ["2", "4", "6", "8"], "unit": None, "precision": None, "answer": "6", "question_type": "multi_choice",
         "answer_type": "text", "query": "Hint: ...\nQuestion: Find x.\nChoices:\n(A) 2\n(B) 4\n(C) 6\n(D) 8", "metadata": meta},
        {"pid": "2", "question": "What is the length of the longest side?", "image": "images/2.jpg",
         "decoded_image": {"bytes": figure_png(21), "path": "2.png"}, "choices": None, "unit": "cm", "precision": 1.0,
         "answer": "7.5", "question_type": "free_form", "answer_type": "float", "query": "...", "metadata": meta},
        {"pid": "3", "question": "How many triangles are there?", "image": "images/3.jpg",
         "decoded_image": {"bytes": figure_png(22), "path": "3.png"}, "choices": None, "unit": None, "precision": None,
         "answer": "1", "question_type": "free_form", "answer_type": "integer", "query": "...", "metadata": meta},
    ])

    out["gsm8k"] = root / "gsm8k" / "test.jsonl"
    _jsonl(out["gsm8k"], [
        {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
         "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"},
        {"question": "A shop sold 1,200 pens at $2 each. How much money did it make?", "answer": "1200 * 2 = <<1200*2=2400>>2400\n#### 2,400"},
    ])

    out["math"] = root / "math" / "test.jsonl"
    _jsonl(out["math"], [
        {"problem": "What is $\\frac{1}{2} + \\frac{1}{3}$?", "solution": "We have $\\frac{3}{6}+\\frac{2}{6} = \\boxed{\\frac{5}{6}}$.",
         "level": "Level 1", "type": "Prealgebra", "unique_id": "test/prealgebra/1.json"},
        {"problem": "Find the area of a circle of radius 3.", "solution": "The area is $\\pi r^2 = \\boxed{9\\pi}$.",
         "level": "Level 2", "type": "Geometry", "unique_id": "test/geometry/7.json"},
    ])

    out["mbpp"] = root / "mbpp" / "mbpp.jsonl"
    _jsonl(out["mbpp"], [
        {"text": "Write a function to find the minimum of two numbers.", "code": "def min_of_two(a, b):\n    return a if a < b else b",
         "task_id": 11, "test_setup_code": "", "test_list": ["assert min_of_two(1, 2) == 1", "assert min_of_two(5, 3) == 3"],
         "challenge_test_list": []},
        {"text": "Write a function to compute the square root of a perfect square.", "code": "def root(n):\n    return int(math.isqrt(n))",
         "task_id": 12, "test_setup_code": "import math", "test_list": ["assert root(16) == 4", "assert root(81) == 9"],
         "challenge_test_list": []},
    ])

    out["humaneval"] = root / "humaneval" / "HumanEval.jsonl"
    _jsonl(out["humaneval"], [
        {"task_id": "HumanEval/0", "prompt": "def add(a: int, b: int) -> int:\n    \"\"\"Return a + b.\"\"\"\n",
         "canonical_solution": "    return a + b\n", "entry_point": "add",
         "test": "\n\nMETADATA = {}\n\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"},
    ])
    return out


def sample_records(image_dir: Path) -> list[dict]:
    """Mixed riskpo-mm records (geometry with an image, mcq, math, numeric, code); images written to image_dir."""
    image_dir.mkdir(parents=True, exist_ok=True)
    for k in (0, 1):
        (image_dir / f"fig{k}.png").write_bytes(figure_png(30 + k))
    return [
        {"id": "s-geo-0", "task": "geometry", "prompt": "<image>Find the angle x in degrees.", "images": ["images/fig0.png"],
         "answer": "40", "meta": {"source": "sample", "level": 2}},
        {"id": "s-mcq-0", "task": "mcq", "prompt": "Which figure has more sides? <image> or <image>",
         "images": ["images/fig0.png", "images/fig1.png"], "answer": "B", "choices": ["the first", "the second"],
         "meta": {"source": "sample"}},
        {"id": "s-math-0", "task": "math", "prompt": "What is 12 * 12?", "answer": "144", "meta": {"source": "sample"}},
        {"id": "s-num-0", "task": "numeric", "prompt": [{"role": "user", "content": "Give pi to two decimals."}],
         "answer": "3.14", "meta": {"source": "sample"}},
        {"id": "s-code-0", "task": "code", "prompt": "Write a function double(x) that returns 2 * x.", "answer": "def double(x):\n    return 2 * x",
         "tests": ["assert double(2) == 4", "assert double(-1) == -2"], "meta": {"source": "sample"}},
        {"id": "s-code-1", "task": "code", "prompt": "Read an integer n from stdin and print n + 1.", "answer": "print(int(input()) + 1)",
         "tests": {"inputs": ["1\n", "41\n"], "outputs": ["2\n", "42\n"]}, "meta": {"source": "sample"}},
    ]


def write_record_samples(root: str | Path) -> dict[str, Path]:
    """The sample records as JSONL (image paths), parquet and an HF dataset folder (embedded image bytes)."""
    root = Path(root)
    rows = sample_records(root / "images")
    jsonl = root / "sample.jsonl"
    _jsonl(jsonl, rows)
    embedded = []
    for r in rows:
        e = {**r, "images": [{"bytes": (root / p).read_bytes(), "path": Path(p).name} for p in r.get("images", [])]}
        e["prompt"] = json.dumps(e["prompt"]) if not isinstance(e["prompt"], str) else e["prompt"]
        e["tests"], e["meta"] = json.dumps(r.get("tests")), json.dumps(r.get("meta", {}))
        e.setdefault("choices", None)
        embedded.append(e)
    parquet = root / "sample.parquet"
    _parquet(parquet, embedded)
    import datasets

    hf = root / "sample_hf"
    datasets.Dataset.from_list(embedded).save_to_disk(str(hf))
    return {"jsonl": jsonl, "parquet": parquet, "hf": hf}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else "data")
    raw = write_raw_samples(root / "raw")
    write_record_samples(root / "records")
    from .convert import convert
    from .synthetic import make_geometry

    for fmt, path in raw.items():
        convert(fmt, [path], root / "converted" / f"{fmt}.jsonl")
    make_geometry(root / "synthetic", n=24, seed=0, test_fraction=0.25, size=112)
    print(f"wrote samples under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
