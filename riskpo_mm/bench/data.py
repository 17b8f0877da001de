"""Data pipeline throughput: records/s from raw files to model-ready prompt tensors.

    python -m riskpo_mm.bench.data [--n 192] [--size 768] [--batch 16] [--workers 2] [--json PATH]

Renders `n` synthetic geometry records at `size` px (larger than the default
max_pixels, so every image is resized down to it), then times load_records +
image decode/resize + chat template + processor, single process and through a
torch DataLoader with workers. Ratios are against the single-process run.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from riskpo_mm.data import ImageConfig, PromptCollator, PromptDataset, load_records
from riskpo_mm.data.synthetic import make_geometry


def _processor(family: str):
    from riskpo_mm.models.tiny import build_processor
    from riskpo_mm.models.tokenizers import build_tokenizer

    return build_processor(family, build_tokenizer("compact", family))


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m riskpo_mm.bench.data")
    ap.add_argument("--n", type=int, default=192)
    ap.add_argument("--size", type=int, default=768, help="side of the rendered images in px")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--family", default="qwen2_5_vl")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = ImageConfig()  # defaults: min 3136, max 401408 px
    collate = PromptCollator(_processor(args.family), cfg, args.family)
    with tempfile.TemporaryDirectory() as tmp:
        make_geometry(tmp, n=args.n + 1, seed=0, test_fraction=1 / (args.n + 1), size=args.size)
        path = f"{tmp}/train.jsonl"
        records = load_records(path)
        n = len(records)

        def single():
            recs = load_records(path)
            for i in range(0, len(recs), args.batch):
                collate(recs[i:i + args.batch])

        def loader(workers: int):
            def run():
                recs = load_records(path)
                dl = torch.utils.data.DataLoader(PromptDataset(recs), batch_size=args.batch, num_workers=workers,
                                                 collate_fn=collate, persistent_workers=False)
                for _ in dl:
                    pass
            return run

        single()  # warm caches (tokenizer, fonts, file system)
        probe = collate(records[:1])
        tokens = int(probe.mm_token_type_ids.sum())
        rows = [("single process", _time(single))]
        rows.append((f"DataLoader, {args.workers} workers", _time(loader(args.workers))))
    base = rows[0][1]
    print(f"data pipeline: {n} image records, {args.size}px -> max_pixels {cfg.max_pixels} "
          f"({tokens} image tokens each), {args.family}, batch {args.batch}, torch threads 1")
    print(f"{'mode':<26}{'records/s':>12}{'vs single':>11}")
    for name, secs in rows:
        print(f"{name:<26}{n / secs:>12.1f}{base / secs:>10.2f}x")
    if args.json:
        import json

        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"bench": "data", "rows": [{"mode": name, "records_per_s": n / secs, "vs_single": base / secs}
                                                  for name, secs in rows]}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
