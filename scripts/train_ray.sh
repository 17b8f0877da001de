#!/usr/bin/env bash
# Train with the Ray engine: OpenRLHF's Ray PPO trainer (vLLM rollouts, DeepSpeed ZeRO) with the
# RiskPO trainer, actor and rollout classes swapped in, submitted with `ray job submit`.
#
#   scripts/train_ray.sh CONFIG [--set key=value ...] [--resume]
#
# On the machine you run it from it builds what the config asks for (tiny model, synthetic data,
# SFT warm start), evaluates before RL, starts a Ray head if none is running (and stops it at the
# end), submits the job, evaluates after RL and writes the run folder (report.json, summary.txt,
# metrics.jsonl, tensorboard/, checkpoints/, final_model/). CONFIG is read from your directory.
# Multi-node: on each worker node   RAY_HEAD_ADDRESS=<head-ip>:6379 scripts/train_ray.sh --join
#             then set ray.num_nodes in the config and run the script on the head node.
# Dry run (print the exact commands, start nothing, write nothing):  DRY_RUN=1 scripts/train_ray.sh CONFIG
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$( [[ -x "$REPO/.venv/bin/python" ]] && echo "$REPO/.venv/bin/python" || command -v python3 )}
RAY="$(dirname "$PY")/ray"
[[ -x "$RAY" ]] || { echo "train_ray.sh: no ray command beside $PY; run 'make setup' first" >&2; exit 2; }

if [[ "${1:-}" == "--join" ]]; then
  : "${RAY_HEAD_ADDRESS:?set RAY_HEAD_ADDRESS=<head-ip>:6379 to join a cluster}"
  cmd=("$RAY" start --address "$RAY_HEAD_ADDRESS" --num-gpus "${NUM_GPUS:-8}")
  if [[ -n "${DRY_RUN:-}" ]]; then printf '+'; printf ' %q' "${cmd[@]}"; echo; else "${cmd[@]}"; fi
  exit 0
fi
CONFIG=${1:?usage: scripts/train_ray.sh CONFIG [--set key=value ...] [--resume]}
shift
[[ -f "$CONFIG" ]] || { echo "train_ray.sh: config file not found: $CONFIG (relative paths are read from $(pwd))" >&2; exit 2; }
CONFIG=$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")
cd "$REPO"
args=(-m riskpo_mm.engine.train --config "$CONFIG" --set engine=ray --launcher submit "$@")
[[ -n "${DRY_RUN:-}" ]] && args+=(--dry-run)
exec "$PY" "${args[@]}"
