"""Read record files (JSONL, parquet, HF dataset folders) into validated Records.

`load_records` is the one entry point. Every record is validated (schema,
task requirements, images that exist and decode); a bad one raises DataError
naming file, line (JSONL, 1-based) or row (parquet / HF dataset, 0-based) and
field, or under on_bad_record="skip" is left out and listed in `RecordSet.bad`
(a warning with the count is logged too): nothing vanishes silently.

Images: a path must stay inside the data file's folder (an HF dataset: the
folder itself) or inside `image_root` (`data.image_root`); `../x.png`, an
absolute path or a symlink leading elsewhere is a DataError. An image's
declared size is read from its header and checked against
`images.SOURCE_PIXELS_FACTOR x max_pixels` before anything is decoded;
validation then only verifies the file's structure (`Image.verify`), never
decodes the pixels.

Mixtures: with `weights`, each output slot picks a source with probability
proportional to its weight (seeded RNG); within a source, records come in a
seeded random order and a new permutation starts when it runs out, so small
sources are over-sampled and large ones under-sampled. The mixture has
`num_samples` records (default: the sum of the source sizes). Without
weights the sources are concatenated in order, unshuffled.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
from collections.abc import Iterator, Sequence
from typing import Any

from PIL import Image

from .images import (ImageError, check_declared_size, image_bytes, looks_like_base64, resolve_image_path,
                     source_pixel_limit)
from .record import BadRecord, DataError, Record

log = logging.getLogger(__name__)


class RecordSet(list):
    """A list of Records plus what was rejected while loading: `bad` (BadRecord list) and `skipped`."""

    def __init__(self, records: Sequence[Record] = (), bad: Sequence[BadRecord] = ()):
        super().__init__(records)
        self.bad: list[BadRecord] = list(bad)

    @property
    def skipped(self) -> int:
        return len(self.bad)

    def summary(self) -> str:
        head = f"{len(self)} records, {self.skipped} skipped"
        return head if not self.bad else head + "\n" + "\n".join(f"  {b}" for b in self.bad[:20])


def load_records(
    path_or_paths: str | os.PathLike | Sequence[str | os.PathLike],
    on_bad_record: str = "error",
    weights: Sequence[float] | None = None,
    seed: int = 0,
    num_samples: int | None = None,
    check_images: bool = True,
    image_root: str | os.PathLike | None = None,
    max_pixels: int | None = None,
    limit: int | None = None,
) -> RecordSet:
    """Load and validate records from one or several sources (see module doc for mixtures and images).

    image_root: the one folder besides each data file's own that image paths may point into.
    max_pixels: the resize budget (data.max_pixels); sources declaring more than
    ``SOURCE_PIXELS_FACTOR`` times it are rejected from their header.
    limit: read at most this many rows of each source (a sample, e.g. for `riskpo-mm train --dry-run`).
    A record whose task has no grader (`riskpo_mm.rewards.router.tasks()`) is a bad record: it would
    earn reward 0 forever.
    """
    if on_bad_record not in {"error", "skip"}:
        raise ValueError(f"on_bad_record must be 'error' or 'skip', got {on_bad_record!r}")
    paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
    if not paths:
        raise ValueError("load_records: no data paths given")
    if weights is not None:
        if len(weights) != len(paths):
            raise ValueError(f"load_records: {len(weights)} weights for {len(paths)} sources")
        if any(not w > 0 for w in weights):
            raise ValueError(f"load_records: weights must be > 0, got {list(weights)}")
    sources: list[list[Record]] = []
    bad: list[BadRecord] = []
    images = _ImagePolicy(os.path.realpath(os.fspath(image_root)) if image_root else None,
                          source_pixel_limit(max_pixels), check_images)
    for p in paths:
        recs, b = _load_source(os.fspath(p), on_bad_record, images, limit)
        sources.append(recs)
        bad.extend(b)
    if bad:
        log.warning("skipped %d bad records (on_bad_record=skip); first: %s", len(bad), bad[0])
    if weights is None:
        out = [r for recs in sources for r in recs]
        if num_samples is not None:
            out = out[:num_samples]
        return RecordSet(out, bad)
    return RecordSet(_mix(sources, [float(w) for w in weights], seed, num_samples), bad)


def _mix(sources: list[list[Record]], weights: list[float], seed: int, num_samples: int | None) -> list[Record]:
    live = [i for i, s in enumerate(sources) if s]
    if not live:
        return []
    rng = random.Random(seed)
    n = sum(len(s) for s in sources) if num_samples is None else num_samples
    orders: dict[int, list[int]] = {}
    cursor = {i: 0 for i in live}
    out = []
    for _ in range(n):
        i = rng.choices(live, weights=[weights[j] for j in live])[0]
        if i not in orders or cursor[i] == len(sources[i]):
            orders[i] = rng.sample(range(len(sources[i])), len(sources[i]))
            cursor[i] = 0
        out.append(sources[i][orders[i][cursor[i]]])
        cursor[i] += 1
    return out


class _ImagePolicy:
    """Where image paths may point and how large a source image may be."""

    def __init__(self, root: str | None, max_source_pixels: int, check: bool) -> None:
        self.root, self.max_source_pixels, self.check = root, max_source_pixels, check


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def known_tasks() -> list[str]:
    """Tasks that have a grader in the default reward router (built in, or added with `register_task`)."""
    from riskpo_mm.rewards import router

    return router.tasks()


def _check_task(task: str, where: str, known: list[str]) -> None:
    if task in known:
        return
    import difflib

    close = difflib.get_close_matches(task, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DataError(where, "task", f"unknown task {task!r}{hint} (tasks with a grader: {', '.join(known)}; a new task "
                    "needs riskpo_mm.rewards.register_task, else every response to it earns reward 0)")


def _load_source(path: str, on_bad_record: str, images: _ImagePolicy,
                 limit: int | None = None) -> tuple[list[Record], list[BadRecord]]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"data source not found: {path}")
    base_dir = os.path.dirname(os.path.abspath(path)) if os.path.isfile(path) else os.path.abspath(path)
    if os.path.isdir(path):
        rows, unit = _hf_rows(path), "row"
    elif path.endswith(".parquet"):
        rows, unit = _parquet_rows(path), "row"
    elif path.endswith((".jsonl", ".json")):
        rows, unit = _jsonl_rows(path), "line"
    else:
        raise DataError(path, "<file>", "unknown format; expected .jsonl, .parquet or an HF dataset folder (save_to_disk)")
    records, bad, seen = [], [], {}
    known = known_tasks()
    for count, (pos, row) in enumerate(rows):
        if limit is not None and count >= limit:
            break
        where = f"{path}:{pos}" if unit == "line" else f"{path} row {pos}"
        try:
            if isinstance(row, DataError):
                raise row
            rec = Record.from_dict(row, where)
            _check_task(rec.task, where, known)
            if rec.id in seen:
                raise DataError(where, "id", f"duplicate id {rec.id!r} (first at {unit} {seen[rec.id]}); ids must be unique")
            rec.images = [_checked_image(im, base_dir, where, k, images) for k, im in enumerate(rec.images)]
            seen[rec.id] = pos
            records.append(rec)
        except DataError as e:
            if on_bad_record == "error":
                raise
            bad.append(BadRecord(path, pos, e.field, e.detail))
    return records, bad


def _checked_image(ref: Any, base_dir: str, where: str, k: int, policy: _ImagePolicy) -> Any:
    """Resolve relative paths against the data file's folder, keep paths contained, check the header size
    and that the image's structure verifies (no pixels decoded)."""
    field = f"images[{k}]"
    if isinstance(ref, str) and ref.startswith(("http://", "https://")):
        raise DataError(where, field, "image URLs are not fetched (no network); give a path or base64 data")
    if isinstance(ref, dict) and ref.get("bytes") is None and ref.get("path"):
        ref = str(ref["path"])
    if isinstance(ref, str) and not ref.startswith("data:"):
        path = resolve_image_path(ref, base_dir)
        if os.path.isfile(path) or not looks_like_base64(ref):
            _check_contained(ref, path, base_dir, where, field, policy.root)
        if os.path.isfile(path):
            ref = path
    if not policy.check:
        return ref
    try:
        if isinstance(ref, str) and os.path.isfile(ref):
            with Image.open(ref) as im:
                check_declared_size(im, ref, policy.max_source_pixels)
                im.verify()
        elif isinstance(ref, Image.Image):
            check_declared_size(ref, "PIL image", policy.max_source_pixels)
        else:
            data = image_bytes(ref)
            if data is None:
                if isinstance(ref, str) and looks_like_base64(ref):
                    data = image_bytes("data:;base64," + ref)
                else:
                    raise ImageError(f"image file not found: {resolve_image_path(str(ref), base_dir)}")
            with Image.open(io.BytesIO(data)) as im:
                check_declared_size(im, "image data", policy.max_source_pixels)
                im.verify()
    except ImageError as e:
        raise DataError(where, field, str(e)) from None
    except Exception as e:  # PIL raises many types for corrupt data
        raise DataError(where, field, f"corrupt image ({type(e).__name__}: {e})") from None
    return ref


def _check_contained(ref: str, path: str, base_dir: str, where: str, field: str, root: str | None) -> None:
    """DataError unless ``path`` (symlinks followed) lies in the data folder or ``root``."""
    real = os.path.realpath(path)
    if _inside(real, os.path.realpath(base_dir)) or (root is not None and _inside(real, root)):
        return
    allowed = f"the data folder {base_dir}" + (f" or data.image_root {root}" if root else "")
    hint = "" if root else "; set data.image_root to the folder that holds it to allow it"
    raise DataError(where, field, f"image path {ref[:200]!r} resolves to {real}, outside {allowed}{hint}")


def _jsonl_rows(path: str) -> Iterator[tuple[int, Any]]:
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".json") and raw.lstrip()[:1] == b"[":
        try:
            items = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(path, "<file>", f"invalid JSON array ({e})") from None
        yield from enumerate(items, start=1)
        return
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            yield n, DataError(f"{path}:{n}", "<line>", f"not valid UTF-8 ({e})")
            continue
        try:
            yield n, json.loads(text)
        except json.JSONDecodeError as e:
            yield n, DataError(f"{path}:{n}", "<line>", f"invalid JSON ({e.msg} at column {e.colno})")


def _parquet_rows(path: str) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise DataError(path, "<file>", f"not a readable parquet file ({e})") from None
    n = 0
    for batch in pf.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            yield n, row
            n += 1


def _hf_rows(path: str) -> Iterator[tuple[int, Any]]:
    import datasets

    try:
        ds = datasets.load_from_disk(path)
    except Exception as e:
        raise DataError(path, "<folder>", f"not an HF dataset folder written by save_to_disk ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        raise DataError(path, "<folder>", f"holds several splits {list(ds)}; give one split folder, e.g. {os.path.join(path, next(iter(ds)))}")
    ds = ds.cast_column("images", datasets.Sequence(datasets.Image(decode=False))) if _has_decoded_images(ds) else ds
    for n, row in enumerate(ds):
        yield n, row


def _has_decoded_images(ds: Any) -> bool:
    import datasets

    feat = ds.features.get("images")
    inner = getattr(feat, "feature", None)
    if isinstance(feat, list) and feat:
        inner = feat[0]
    return isinstance(inner, datasets.Image) and inner.decode
