"""Checks `riskpo-mm train` runs before anything is written: the run folder, `--resume` against the
saved config, the model folder and the data, and the short config summary printed at start.

`check_run(cfg, deep=...)` returns every problem at once (strings naming the key) and notes on what a
run would build; with ``deep`` (``--dry-run``) it also validates a sample of each data source's records.
Nothing here writes a file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from riskpo_mm.config import RunConfig, flatten

SAMPLE = 200  # records validated per data source in a dry run

# Resumed runs: keys whose change breaks the saved state, and keys that are safe to change.
UNSAFE_ON_RESUME = ("algorithm.", "rollout.prompts_per_step", "rollout.n_samples_per_prompt", "model.", "data.",
                    "seed", "engine")
SAFE_ON_RESUME = ("train.steps", "checkpoint.", "logging.", "eval.")


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in patterns)


# ── the run folder ──

def existing_run(run_dir: Path) -> list[str]:
    """What makes `run_dir` an earlier run (metrics.jsonl, checkpoints), empty when it is none."""
    found = []
    if (run_dir / "metrics.jsonl").is_file():
        found.append("metrics.jsonl")
    ckpts = run_dir / "checkpoints"
    if ckpts.is_dir() and any(ckpts.iterdir()):
        found.append("checkpoints/")
    return found


def refuse_existing_run(run_dir: Path, found: list[str]) -> str:
    return (f"the run folder {run_dir} already holds a run ({', '.join(found)}); continue it with --resume, start "
            f"over with --overwrite (moves it aside to {run_dir}.old-<time>), or set another name / output_dir")


def move_aside(run_dir: Path) -> Path:
    """Rename `run_dir` to `<run_dir>.old-<YYYYmmdd-HHMMSS>` (a suffix added if that exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    k = 1
    while target.exists():
        target = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{k}")
        k += 1
    shutil.move(str(run_dir), str(target))
    return target


# ── --resume against the saved config ──

def config_changes(saved: dict, new: dict) -> list[tuple[str, Any, Any]]:
    """(key, saved value, new value) of every leaf that differs; keys only one side has (a field added or
    removed by a newer riskpo-mm) are left out."""
    a, b = flatten(saved), flatten(new)
    return [(k, a[k], b[k]) for k in a if k in b and a[k] != b[k]]


def resume_check(cfg: RunConfig) -> tuple[list[str], list[str]]:
    """(report lines, refused keys) of `--resume` with `cfg` against `<run>/config.yaml`."""
    path = cfg.run_dir / "config.yaml"
    if not path.is_file() or not existing_run(cfg.run_dir):
        return [], []
    try:
        saved = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return [f"[riskpo-mm] --resume: {path} is not valid YAML; the config is not compared"], []
    changes = config_changes(saved, cfg.model_dump(mode="json"))
    if not changes:
        return [], []
    lines = [f"[riskpo-mm] --resume: the config differs from {path}:"]
    refused = []
    for key, old, new in changes:
        if _matches(key, UNSAFE_ON_RESUME):
            kind = "refused: breaks the saved state"
            refused.append(key)
        elif _matches(key, SAFE_ON_RESUME):
            kind = "safe"
        else:
            kind = "allowed; applies from the resumed step on"
        lines.append(f"  {key}: {old!r} -> {new!r}  ({kind})")
    return lines, refused


def refuse_resume(cfg: RunConfig, refused: list[str]) -> str:
    return (f"--resume with changed {', '.join(refused)}: the checkpoint's state (quantile trackers, pairing, "
            "data order, batch shapes, weights) was built with the saved values in "
            f"{cfg.run_dir / 'config.yaml'}; resume with those values, or start a new run (another name, or "
            "--overwrite to move this one aside). Safe to change on resume: train.steps, checkpoint.*, logging.*, "
            "eval.*")


# ── model and data ──

def looks_like_hub_id(path: str) -> bool:
    """'Qwen/Qwen2.5-VL-3B-Instruct' (namespace/name, not on disk, first part not a local folder)."""
    if path.startswith((".", "/", "~")) or not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", path):
        return False
    return not Path(path.split("/")[0]).exists()


def check_model(cfg: RunConfig, f: Findings) -> Optional[bool]:
    """Adds model problems/notes; returns whether the model takes images (None: unknown)."""
    path = cfg.model.path
    p = Path(path).expanduser()
    if (p / "config.json").is_file():
        try:
            hf = json.loads((p / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as err:
            f.problems.append(f"model.path: {p / 'config.json'} is not valid JSON ({err})")
            return None
        return "vision_config" in hf
    if cfg.model.tiny is not None:
        t = cfg.model.tiny
        f.notes.append(f"would be built: a tiny random {t.family} model (size {t.size}) at model.path {path}")
        return t.family != "qwen2"
    if p.is_dir():
        f.problems.append(f"model.path: the folder {path} has no config.json, so it is not a model folder")
    elif looks_like_hub_id(path):
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false")
        f.notes.append(f"model.path {path}: no such folder here, so it is read as a Hugging Face hub id (needs the "
                       "network or a cached copy" + ("; HF_HUB_OFFLINE is set here" if offline else "")
                       + "); if you meant a local folder, it does not exist")
    else:
        f.problems.append(f"model.path: the folder {path} does not exist (give a model folder with a config.json, "
                          "or set model.tiny to build a tiny offline model there)")
    return None


def _sources(cfg: RunConfig) -> tuple[list[tuple[str, str]], bool]:
    """[(key, path)] of every data source, and whether the synthetic set would be built."""
    syn = cfg.data.synthetic
    build = syn is not None and not ((Path(syn.dir) / "train.jsonl").is_file() and (Path(syn.dir) / "test.jsonl").is_file())
    out = [(f"data.train[{i}].path", s.path) for i, s in enumerate(cfg.data.train)]
    out += [(f"data.test[{i}].path", s.path) for i, s in enumerate(cfg.data.test)]
    if syn is not None and not build:
        if not cfg.data.train:
            out.append(("data.synthetic.dir", str(Path(syn.dir) / "train.jsonl")))
        if not cfg.data.test:
            out.append(("data.synthetic.dir", str(Path(syn.dir) / "test.jsonl")))
    return out, build


def check_data(cfg: RunConfig, f: Findings, *, deep: bool, takes_images: Optional[bool]) -> None:
    from riskpo_mm.data import DataError, load_records

    sources, build = _sources(cfg)
    if build:
        syn = cfg.data.synthetic
        f.notes.append(f"would be built: the synthetic geometry set ({syn.n} records, levels {syn.levels}) in "
                       f"data.synthetic.dir {syn.dir}")
    for key, path in sources:
        if not os.path.exists(path):
            f.problems.append(f"{key}: {path} does not exist")
            continue
        if not deep:
            continue
        import logging

        loader_log = logging.getLogger("riskpo_mm.data.loaders")
        level, loader_log.level = loader_log.level, logging.ERROR  # the bad records are reported below
        try:
            recs = load_records([path], on_bad_record="skip", limit=SAMPLE, image_root=cfg.data.image_root,
                                max_pixels=cfg.data.max_pixels)
        except (DataError, ValueError, OSError) as err:
            f.problems.append(f"{key}: {err}")
            continue
        finally:
            loader_log.level = level
        for bad in recs.bad[:5]:
            f.problems.append(f"{key}: {bad}")
        if len(recs.bad) > 5:
            f.problems.append(f"{key}: ... and {len(recs.bad) - 5} more bad records among the first {SAMPLE}")
        with_images = next((r for r in recs if r.images), None)
        if takes_images is False and with_images is not None:
            f.problems.append(f"{key}: record {with_images.id!r} has images but model.path {cfg.model.path} is a "
                              "text-only model; use a Qwen-VL model or text-only records")
        if not recs.bad:
            f.notes.append(f"ok: {key} {path} (first {len(recs)} records validated)")


def check_layout(cfg: RunConfig, f: Findings) -> None:
    """Divisibility the config alone cannot check: the ranks of a `deepspeed` launch."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    P = cfg.rollout.prompts_per_step
    batch = cfg.train.batch_size or P * cfg.rollout.n_samples_per_prompt
    if cfg.engine == "local" and world > 1:
        if P % world:
            f.problems.append(f"rollout.prompts_per_step ({P}) must be divisible by the number of ranks ({world})")
        if batch % (cfg.train.micro_batch_size * world):
            f.problems.append(f"train.batch_size ({batch}) must be divisible by train.micro_batch_size * ranks "
                              f"({cfg.train.micro_batch_size} * {world})")


def check_run(cfg: RunConfig, *, deep: bool) -> Findings:
    """Every problem with the model, data and layout at once (module doc)."""
    f = Findings()
    takes_images = check_model(cfg, f)
    check_data(cfg, f, deep=deep, takes_images=takes_images)
    check_layout(cfg, f)
    return f


# ── the start-up summary ──

def _count(path: str) -> str:
    p = Path(path)
    if not p.exists():
        return "missing"
    try:
        if p.is_file() and p.suffix in (".jsonl", ".json"):
            with p.open("rb") as fh:
                return str(sum(1 for line in fh if line.strip()))
        if p.is_file() and p.suffix == ".parquet":
            import pyarrow.parquet as pq

            return str(pq.ParquetFile(p).metadata.num_rows)
    except OSError:
        pass
    return "?"


def summary(cfg: RunConfig) -> str:
    """A few lines on what the run is (the full resolved config goes to `<run>/config.yaml`)."""
    def sources(items) -> str:
        counts = [(s.path, _count(s.path)) for s in items]
        return ", ".join(f"{p} ({c})" if c == "missing" else f"{p} ({c} records)" for p, c in counts)

    data = []
    if cfg.data.train:
        data.append(f"train {sources(cfg.data.train)}")
    if cfg.data.test:
        data.append(f"test {sources(cfg.data.test)}")
    if cfg.data.synthetic is not None:
        syn = cfg.data.synthetic
        data.append(f"synthetic geometry, {syn.n} records ({syn.test_fraction:.0%} test) in {syn.dir}")
    a = cfg.algorithm
    method = f"{a.estimator}" + (f" (preset {a.preset})" if a.estimator == "riskpo" else "")
    r = cfg.rollout
    tiny = f" (tiny {cfg.model.tiny.family} {cfg.model.tiny.size})" if cfg.model.tiny else ""
    lines = [
        f"[riskpo-mm] run {cfg.name}: engine {cfg.engine}, run folder {cfg.run_dir} (full config: "
        f"{cfg.run_dir / 'config.yaml'})",
        f"  model      {cfg.model.path}{tiny}, {cfg.model.dtype}",
        f"  data       {'; '.join(data)}",
        f"  method     {method}; {cfg.train.steps} steps x {r.prompts_per_step} prompts x "
        f"{r.n_samples_per_prompt} samples, lr {cfg.train.lr:g}" + (f"; SFT warm start {cfg.sft.steps} steps"
                                                                     if cfg.sft.enabled else ""),
    ]
    return "\n".join(lines)
