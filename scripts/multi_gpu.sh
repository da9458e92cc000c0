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
# jax.distributed needs the process count and id, which JAX reads from no variable of its own outside
# cluster managers (SLURM, Open MPI, k8s): pass them explicitly, then hand over to the usual CLI (its
# maybe_initialize_distributed sees JAX already initialised and does nothing).
LAUNCH='import sys, jax
jax.distributed.initialize(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), local_device_ids=[int(sys.argv[3])])
from mqa_repro.cli import main
sys.exit(main(sys.argv[4:]))'
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
for ((i = 0; i < NUM_GPUS; i++)); do
  "$PYTHON" -c "$LAUNCH" "localhost:$PORT" "$NUM_GPUS" "$i" "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit "$status"
