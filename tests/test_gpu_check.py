"""The GPU check runs end to end on the CPU (`--cpu-dry-run`) through its shell driver and writes
every section of results.json with finite numbers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from riskpo_mm.bench import gpu_check

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"


def numbers(tree, path: str = ""):
    """(path, value) for every number in a JSON tree."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from numbers(v, f"{path}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from numbers(v, f"{path}[{i}]")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check_out")
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "WHEELS": "", "TORCHDYNAMO_DISABLE": "1"}
    proc = subprocess.run(["bash", str(SCRIPT), "--cpu-dry-run"], env=env, capture_output=True, text=True, timeout=85)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_dry_run_writes_every_section_with_finite_numbers(dry_run):
    out, _ = dry_run
    results = json.loads((out / "results.json").read_text())
    for section in ("environment", "matmul", "estimator", "training", "logprob_agreement", "wall_s"):
        assert section in results, section
    assert results["environment"]["dry_run"] is True
    for name in ("riskpo", "grpo"):
        assert {"cpu_ms", "device_ms", "speedup"} <= set(results["estimator"][name])
    size = results["training"]["xs"]
    for key in ("rollout_tokens_per_s", "train_tokens_per_s", "mfu", "peak_memory_gb", "step_ratio", "update_ratio"):
        assert size[key] > 0, key
    assert size["riskpo"]["step_s"] > 0 and size["grpo"]["step_s"] > 0
    agreement = results["logprob_agreement"]["xs"]
    assert agreement["tokens"] == size["generated_tokens"] > 0
    assert 0 <= agreement["mean_abs_diff"] <= agreement["max_abs_diff"]
    found = list(numbers({k: v for k, v in results.items() if k != "method"}))
    assert found
    bad = [(p, v) for p, v in found if not math.isfinite(v)]
    assert not bad, bad


def test_dry_run_prints_the_table_last_and_keeps_a_log(dry_run):
    out, stdout = dry_run
    tail = stdout.strip().splitlines()[-4:]
    assert tail[0].startswith("estimator P=256 n=16")
    assert tail[1].split()[:3] == ["size", "params", "roll"]
    assert tail[2].startswith("xs ")
    assert tail[3].startswith("MFU = 6*")
    assert "rendered 5 geometry prompts" in (out / "gpu_check.log").read_text()


def test_realistic_configs_have_the_qwen_vocabulary_and_mrope_sections(tmp_path):
    tok = gpu_check.build_tok("compact")
    for size, spec in gpu_check.REAL_SPECS.items():
        cfg = gpu_check.model_config(size, tok)
        text = cfg.text_config
        assert text.vocab_size == 151936
        head_dim = text.hidden_size // text.num_attention_heads
        assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
        assert cfg.vision_config.depth == spec.v_depth
        assert max(cfg.vision_config.fullatt_block_indexes) == spec.v_depth - 1
        assert cfg.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")


def test_unknown_size_is_refused_with_the_allowed_names(capsys):
    with pytest.raises(SystemExit):
        gpu_check.main(["--cpu-dry-run", "--sizes", "7b"])
    err = capsys.readouterr().err
    assert "unknown size '7b'" in err and "0.5b" in err and "2b" in err


def test_gpu_plan_without_cuda_points_to_the_dry_run(monkeypatch):
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="--cpu-dry-run"):
        gpu_check.main(["--out", "unused"])
