#!/usr/bin/env bash
# Run an mqa-repro command on every GPU of one host.
#
#   scripts/multi_gpu.sh mqa-repro train --config configs/wmt_mqa.py:gpu --workdir runs/wmt_mqa
#       ONE process drives all visible GPUs (the default, and what `reproduce` should use): JAX sees
#       every GPU and the config's mesh (data = -1) spreads the batch over them.
#   scripts/multi_gpu.sh --per-gpu mqa-repro train --config configs/wmt_mqa.py:gpu --workdir runs/wmt_mqa
#       one process per GPU, joined by jax.distributed through a coordinator on localhost: the layout
#       of a multi-node run, testable on one machine. Each process feeds its own rows of every batch.
#
# Environment: NUM_GPUS (default: nvidia-smi's count), PORT (coordinator port, default 12355),
# PYTHON (default .venv/bin/python). Select GPUs with CUDA_VISIBLE_DEVICES as usual.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
PER_GPU=0
if [ "${1:-}" = --per-gpu ]; then PER_GPU=1; shift; fi
[ "${1:-}" = mqa-repro ] && shift
[ $# -gt 0 ] || { sed -n '2,13p' "$0" >&2; exit 2; }

if [ "$PER_GPU" = 0 ]; then
  exec "$PYTHON" -m mqa_repro.cli "$@"
fi

NUM_GPUS=${NUM_GPUS:-$(nvidia-smi -L | wc -l)}
PORT=${PORT:-12355}
# The project's multi-process variables (mqa_repro/sharding.py, maybe_initialize_distributed); JAX itself
# reads JAX_LOCAL_DEVICE_IDS, so process i drives the i-th visible GPU.
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
for ((i = 0; i < NUM_GPUS; i++)); do
  MQA_REPRO_DISTRIBUTED=1 MQA_REPRO_COORDINATOR="localhost:$PORT" MQA_REPRO_NUM_PROCESSES="$NUM_GPUS" \
    MQA_REPRO_PROCESS_ID="$i" JAX_LOCAL_DEVICE_IDS="$i" "$PYTHON" -m mqa_repro.cli "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit "$status"
