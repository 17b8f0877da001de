"""Converters from public dataset layouts to riskpo-mm JSONL records.

    riskpo-mm convert FORMAT --input FILE_OR_FOLDER [...] --output data.jsonl

Formats and the layouts they read (see data/README.md for samples):

  geometry3k  parquet, hiyouga/geometry3k: images (list of {bytes, path}), problem
              (text starting with <image>), answer (text of the correct choice) -> task geometry
  geoqa       GeoQA-style multiple choice, JSONL/JSON rows or a folder of N.json (+ N.png):
              question text in "English problem" | "problem" | "question", choices (list),
              label (0-based index) or answer (letter or choice text), image (path or
              {bytes, path}; else the sibling N.png) -> task mcq, answer letter
  mathvista   MathVista testmini parquet (or its JSON): pid, question, decoded_image
              {bytes, path} / image path, choices, question_type, answer_type, unit,
              precision, answer -> mcq (letter) for multi_choice, numeric for integer/float,
              math otherwise
  gsm8k       JSONL/parquet: question, answer ("... #### 72") -> task math, answer "72"
  math        MATH (hendrycks) JSONL/parquet/JSON: problem, solution (last \\boxed{}), level, type -> math
  mbpp        MBPP JSONL/parquet: text|prompt, code, test_list, test_setup_code|test_imports,
              task_id -> task code, tests = asserts (setup code prepended to each)
  humaneval   HumanEval JSONL: task_id, prompt, canonical_solution, test, entry_point ->
              task code, tests = [test + "check(entry_point)"]

Images are extracted as files into `<output folder>/images/` (original bytes,
not re-encoded) and referenced by relative path, so the JSONL stays small and
the images stay inspectable. The output is written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .record import LETTERS, DataError, Record


class ImageSink:
    """Writes image bytes under out_dir/images/ and returns paths relative to out_dir."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.written = 0

    def save(self, image: Any, stem: str, src_dir: Path | None) -> str:
        data, name = _image_bytes(image, src_dir)
        ext = Path(name).suffix.lower() if name and Path(name).suffix else _sniff_ext(data)
        rel = f"images/{_safe(stem)}{ext}"
        (self.out_dir / "images").mkdir(parents=True, exist_ok=True)
        (self.out_dir / rel).write_bytes(data)
        self.written += 1
        return rel


def _image_bytes(image: Any, src_dir: Path | None) -> tuple[bytes, str | None]:
    if isinstance(image, dict):
        if image.get("bytes") is not None:
            return bytes(image["bytes"]), image.get("path")
        image = image.get("path")
    if isinstance(image, (bytes, bytearray)):
        return bytes(image), None
    if isinstance(image, str) and image:
        p = Path(image)
        if not p.is_absolute() and src_dir is not None:
            p = src_dir / p
        if not p.is_file():
            raise FileNotFoundError(f"image not found: {p}")
        return p.read_bytes(), p.name
    raise ValueError(f"no usable image (got {type(image).__name__})")


def _sniff_ext(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:4] in (b"GIF8",):
        return ".gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".png"


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)


def read_rows(path: Path) -> Iterator[tuple[str, dict, Path]]:
    """(where, row, folder) from parquet, JSONL, JSON (list or {key: row}) or a folder of such files."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in {".parquet", ".jsonl", ".json"})
        if not files:
            raise DataError(str(path), "<folder>", "no .parquet/.jsonl/.json files inside")
        for f in files:
            yield from read_rows(f)
        return
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path} row {i}", row, path.parent
    elif path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        yield f"{path}:{n}", json.loads(line), path.parent
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{n}", "<line>", f"invalid JSON ({e.msg})") from None
    elif path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and not any(isinstance(v, dict) for v in data.values()):
            data = [data]  # one problem per file (GeoQA folders)
        items = data.items() if isinstance(data, dict) else enumerate(data)
        for key, row in items:
            row = dict(row)
            row.setdefault("_key", str(key) if isinstance(data, dict) else path.stem if len(data) == 1 else str(key))
            yield f"{path} item {key}", row, path.parent
    else:
        raise DataError(str(path), "<file>", "expected .parquet, .jsonl, .json or a folder of them")


def _need(row: dict, where: str, *names: str) -> Any:
    for n in names:
        if row.get(n) not in (None, ""):
            return row[n]
    raise DataError(where, names[0] if len(names) == 1 else "|".join(names), "missing in the input row")


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}) with nested braces."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    if not starts:
        return None
    i, depth = starts[-1], 1
    j = i
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[i : j - 1].strip() if depth == 0 else None


# ------------------------------------------------------------------ converters
# each: (row, where, src_dir, index, sink) -> record dict


def geometry3k(row, where, src, i, sink) -> dict:
    images = _need(row, where, "images")
    problem = _need(row, where, "problem")
    rid = f"geometry3k-{row.get('id', i)}"
    paths = [sink.save(im, f"{rid}-{k}", src) for k, im in enumerate(images)]
    return {"id": rid, "task": "geometry", "prompt": problem, "images": paths,
            "answer": str(_need(row, where, "answer")), "meta": {"source": "geometry3k"}}


def geoqa(row, where, src, i, sink) -> dict:
    question = _need(row, where, "English problem", "problem", "question")
    choices = [str(c) for c in _need(row, where, "choices")]
    if row.get("label") is not None:
        idx = int(row["label"])
    else:
        ans = str(_need(row, where, "answer")).strip()
        idx = LETTERS.index(ans) if len(ans) == 1 and ans in LETTERS[: len(choices)] else choices.index(ans) if ans in choices else -1
    if not 0 <= idx < len(choices):
        raise DataError(where, "label", f"expected a 0-based choice index or answer letter/text among {choices}")
    key = str(row.get("id", row.get("_key", i)))
    image = row.get("image") or f"{row.get('_key', key)}.png"  # GeoQA folders: N.json beside N.png
    rid = f"geoqa-{key}"
    path = sink.save(image, rid, src)
    prompt = question if "<image>" in question else "<image>" + question
    return {"id": rid, "task": "mcq", "prompt": prompt, "images": [path], "answer": LETTERS[idx],
            "choices": choices, "meta": {"source": "geoqa", "subject": row.get("subject")}}


def mathvista(row, where, src, i, sink) -> dict:
    pid = str(row.get("pid", i))
    rid = f"mathvista-{pid}"
    image = row.get("decoded_image") or _need(row, where, "image")
    path = sink.save(image, rid, src)
    question = _need(row, where, "question")
    answer = str(_need(row, where, "answer"))
    meta = {"source": "mathvista", "question_type": row.get("question_type"), "answer_type": row.get("answer_type")}
    if row.get("unit"):
        meta["unit"] = row["unit"]
    if row.get("precision") is not None:
        meta["precision"] = row["precision"]
    if isinstance(row.get("metadata"), dict):
        meta.update({k: row["metadata"][k] for k in ("category", "task", "context", "grade") if k in row["metadata"]})
    rec = {"id": rid, "prompt": "<image>" + question, "images": [path], "meta": meta}
    if row.get("question_type") == "multi_choice":
        choices = [str(c) for c in _need(row, where, "choices")]
        if answer not in choices:
            raise DataError(where, "answer", f"multi_choice answer {answer!r} is not one of the choices {choices}")
        return {**rec, "task": "mcq", "choices": choices, "answer": LETTERS[choices.index(answer)]}
    task = "numeric" if row.get("answer_type") in ("integer", "float") else "math"
    return {**rec, "task": task, "answer": answer}


def gsm8k(row, where, src, i, sink) -> dict:
    sol = str(_need(row, where, "answer"))
    if "####" not in sol:
        raise DataError(where, "answer", "expected a GSM8K solution ending in '#### <number>'")
    final = sol.rsplit("####", 1)[1].strip().replace(",", "")
    return {"id": f"gsm8k-{row.get('id', i)}", "task": "math", "prompt": _need(row, where, "question"),
            "answer": final, "meta": {"source": "gsm8k", "solution": sol.rsplit("####", 1)[0].strip()}}


def math_dataset(row, where, src, i, sink) -> dict:
    sol = str(_need(row, where, "solution"))
    ans = row.get("answer") or last_boxed(sol)
    if not ans:
        raise DataError(where, "solution", "expected a \\boxed{...} final answer")
    level = row.get("level")
    m = re.search(r"\d+", str(level)) if level is not None else None
    meta = {"source": "math", "type": row.get("type"), "level": int(m.group()) if m else level}
    rid = row.get("unique_id") or row.get("id") or row.get("_key") or i
    return {"id": f"math-{_safe(str(rid))}", "task": "math", "prompt": _need(row, where, "problem"),
            "answer": str(ans), "meta": meta}


def mbpp(row, where, src, i, sink) -> dict:
    text = _need(row, where, "text", "prompt")
    asserts = list(_need(row, where, "test_list"))
    setup = row.get("test_setup_code") or "\n".join(row.get("test_imports") or [])
    tests = [f"{setup}\n{t}" if setup.strip() else t for t in asserts]
    prompt = f"{text}\nYour code should pass these tests:\n" + "\n".join(asserts)
    return {"id": f"mbpp-{row.get('task_id', i)}", "task": "code", "prompt": prompt,
            "answer": str(row.get("code") or ""), "tests": tests, "meta": {"source": "mbpp"}}


def humaneval(row, where, src, i, sink) -> dict:
    prompt, test, entry = (_need(row, where, k) for k in ("prompt", "test", "entry_point"))
    body = "Complete the following Python function.\n```python\n" + prompt.rstrip() + "\n```"
    return {"id": f"humaneval-{_safe(str(row.get('task_id', i)))}", "task": "code", "prompt": body,
            "answer": prompt + str(row.get("canonical_solution") or ""), "tests": [f"{test}\ncheck({entry})"],
            "meta": {"source": "humaneval", "entry_point": entry}}


CONVERTERS: dict[str, Callable[..., dict]] = {
    "geometry3k": geometry3k, "geoqa": geoqa, "mathvista": mathvista, "gsm8k": gsm8k,
    "math": math_dataset, "mbpp": mbpp, "humaneval": humaneval,
}


def convert(fmt: str, inputs: list[str | os.PathLike], output: str | os.PathLike, limit: int | None = None) -> int:
    """Convert `inputs` of layout `fmt` into the JSONL `output` (images beside it); returns the record count."""
    if fmt not in CONVERTERS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(CONVERTERS)}")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    sink, fn, n = ImageSink(out.parent), CONVERTERS[fmt], 0
    tmp = out.with_name(f".{out.name}.tmp")
    seen: set[str] = set()
    with open(tmp, "w", encoding="utf-8") as f:
        for inp in inputs:
            p = Path(inp)
            if not p.exists():
                raise FileNotFoundError(f"--input not found: {p}")
            for where, row, src in read_rows(p):
                if limit is not None and n >= limit:
                    break
                try:
                    d = fn(row, where, src, n, sink)
                except (FileNotFoundError, ValueError, KeyError, TypeError) as e:
                    if isinstance(e, DataError):
                        raise
                    raise DataError(where, "<row>", str(e)) from None
                if d["id"] in seen:
                    d["id"] = f"{d['id']}-{n}"
                seen.add(d["id"])
                Record.from_dict(d, where)  # fail here, not at training time
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
                n += 1
    os.replace(tmp, out)
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="riskpo-mm convert", description="Convert a public dataset layout to riskpo-mm JSONL.")
    ap.add_argument("format", choices=sorted(CONVERTERS))
    ap.add_argument("--input", nargs="+", required=True, help="input file(s) or folder(s) in the format's layout")
    ap.add_argument("--output", required=True, help="output .jsonl; images go to its folder's images/")
    ap.add_argument("--limit", type=int, default=None, help="convert at most this many records")
    args = ap.parse_args(argv)
    try:
        n = convert(args.format, args.input, args.output, args.limit)
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"riskpo-mm convert: error: {e}", flush=True)
        return 1
    print(f"wrote {n} {args.format} records to {args.output}")
    return 0
