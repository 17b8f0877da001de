"""Offline assets a run can build for itself: the tiny model and the synthetic geometry set."""

from __future__ import annotations

from pathlib import Path

from riskpo_mm.config import DataSource, RunConfig
from riskpo_mm.data import RecordSet, load_records


def ensure_model(cfg: RunConfig) -> Path:
    """The model folder; built from `model.tiny` (random weights, offline) when it is missing."""
    path = Path(cfg.model.path)
    if (path / "config.json").is_file() or cfg.model.tiny is None:
        return path
    from riskpo_mm.models.tiny import make_tiny_model

    t = cfg.model.tiny
    if t.family == "qwen2":  # the text-only family
        from riskpo_mm.models.tiny import make_tiny_text_model

        make_tiny_text_model(t.size, t.tokenizer, path, t.seed)
        return path
    make_tiny_model(family=t.family, size=t.size, tokenizer=t.tokenizer, out_dir=path, seed=t.seed)
    return path


def ensure_data(cfg: RunConfig) -> tuple[list[DataSource], list[DataSource]]:
    """Train and test sources, rendering `data.synthetic` first when its files are missing."""
    train, test = list(cfg.data.train), list(cfg.data.test)
    syn = cfg.data.synthetic
    if syn is not None:
        out = Path(syn.dir)
        if not (out / "train.jsonl").is_file() or not (out / "test.jsonl").is_file():
            from riskpo_mm.data.synthetic import main as make_geometry

            argv = ["--n", str(syn.n), "--seed", str(syn.seed), "--out", str(out), "--test-fraction",
                    str(syn.test_fraction), "--size", str(syn.size), "--levels", ",".join(map(str, syn.levels))]
            if make_geometry(argv):
                raise RuntimeError(f"synthetic geometry generation failed for data.synthetic.dir={out}")
        if not train:
            train = [DataSource(path=str(out / "train.jsonl"))]
        if not test:
            test = [DataSource(path=str(out / "test.jsonl"))]
    return train, test


def load_sources(cfg: RunConfig, sources: list[DataSource], *, mix: bool) -> RecordSet:
    """The records of `sources` under the config's bad-record policy: a weighted, seeded mixture for
    training (`mix`), every record exactly once in order for evaluation."""
    weights = [s.weight for s in sources] if mix else None
    return load_records([s.path for s in sources], on_bad_record=cfg.data.on_bad_record, weights=weights, seed=cfg.seed,
                        image_root=cfg.data.image_root, max_pixels=cfg.data.max_pixels)
