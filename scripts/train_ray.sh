#!/usr/bin/env bash
# Train with the Ray engine: OpenRLHF's Ray PPO trainer (vLLM rollouts, DeepSpeed ZeRO) with the
# RiskPO experience maker and loss swapped in. The YAML config is translated to OpenRLHF flags.
#
# Single node (starts a local Ray head if none is running, then submits the job):
#   scripts/train_ray.sh configs/geometry3k/qwen2_5_vl_7b_riskpo.yaml [--set key=value ...]
# Multi-node:
#   head node:     scripts/train_ray.sh CONFIG          (starts the head, submits once workers joined)
#   each worker:   RAY_HEAD_ADDRESS=<head-ip>:6379 scripts/train_ray.sh --join
#   then set ray.num_nodes in the config to the node count.
# Resume a killed run:   scripts/train_ray.sh CONFIG --resume
# Dry run (print the commands, run nothing):   DRY_RUN=1 scripts/train_ray.sh CONFIG
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
DASHBOARD=${RAY_DASHBOARD_ADDRESS:-http://127.0.0.1:8265}
run() { if [[ -n "${DRY_RUN:-}" ]]; then printf '+ %s\n' "$*"; else "$@"; fi; }

if [[ "${1:-}" == "--join" ]]; then
  : "${RAY_HEAD_ADDRESS:?set RAY_HEAD_ADDRESS=<head-ip>:6379 to join a cluster}"
  run ray start --address "$RAY_HEAD_ADDRESS" --num-gpus "${NUM_GPUS:-8}"
  exit 0
fi
CONFIG=${1:?usage: scripts/train_ray.sh CONFIG [--set key=value ...] [--resume]}
shift
# The job command: `riskpo-mm train` translates the config (and prepares the data files) without running.
mapfile -t JOB < <("$PY" -m riskpo_mm.engine.train --config "$CONFIG" --set engine=ray --print-command "$@")
if [[ -z "${DRY_RUN:-}" ]] && ! ray status >/dev/null 2>&1; then
  ray start --head --num-gpus "${NUM_GPUS:-8}" --dashboard-host 0.0.0.0
fi
run ray job submit --address "$DASHBOARD" --runtime-env-json '{"working_dir": ".", "excludes": [".venv", "runs", ".git"]}' -- "${JOB[@]}"
