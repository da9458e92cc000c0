#!/usr/bin/env bash
# Decoder timing under XLA GPU flag sets, plus one kernel profile: what bounds the greedy step.
# usage: scripts/gpu_bench_flags.sh OUTDIR   (on a GPU machine, repo root, PYTHONPATH set)
set -u
out=${1:?OUTDIR}
cb='--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,WHILE,CONDITIONAL --xla_gpu_graph_min_graph_size=1'
python3 -m mqa_repro.cli bench --variants mqa --parts greedy --no-sweeps --profile /tmp/prof \
  --out "$out/mqa_default.json" 2>&1 | grep --line-buffered '^bench'
for v in mqa mha; do
  XLA_FLAGS="$cb" python3 -m mqa_repro.cli bench --variants $v --parts greedy --no-sweeps \
    --out "$out/${v}_cmdbuf.json" 2>&1 | grep --line-buffered '^bench'
done
python3 -m mqa_repro.cli bench --variants mha --parts train --no-sweeps \
  --out "$out/mha_train_rbg.json" 2>&1 | grep --line-buffered '^bench'
