#!/usr/bin/env bash
# Train with the local engine on one node of N GPUs under the `deepspeed` launcher (data parallel:
# each rank rolls out its share of the prompts; bundles and quantiles span the global batch).
#
#   NUM_GPUS=8 scripts/train_deepspeed.sh configs/demo/geometry_tiny_cpu.yaml --set model.dtype=bfloat16
#   scripts/train_deepspeed.sh CONFIG --resume
# Dry run (print the command, run nothing):   DRY_RUN=1 scripts/train_deepspeed.sh CONFIG
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:?usage: scripts/train_deepspeed.sh CONFIG [--set key=value ...] [--resume]}
shift
DS=${DEEPSPEED:-$( [[ -x .venv/bin/deepspeed ]] && echo .venv/bin/deepspeed || echo deepspeed )}
CMD=("$DS" --num_gpus "${NUM_GPUS:-8}" --master_port "${MASTER_PORT:-29500}" --module riskpo_mm.engine.train
     --config "$CONFIG" --set engine=local "$@")
if [[ -n "${DRY_RUN:-}" ]]; then printf '+ %s\n' "${CMD[*]}"; else exec "${CMD[@]}"; fi
