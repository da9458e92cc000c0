#!/usr/bin/env bash
# Issue 8 on a 2-GPU host: 1 vs 2 GPUs (data=2, model=2) for multi-head and multi-query, one process;
# then the same as 2 processes joined by jax.distributed on localhost. usage: scripts/x2_check.sh OUT
set -u
out=${1:?OUT}
export NCCL_NVLS_ENABLE=0   # never NVLink multicast
for row in mqa mha; do
  python3 -m mqa_repro.cli parallel-check --config configs/wmt_$row.py:gpu --steps 5 --layouts data,model \
    --out "$out/x2_wmt_${row}.json" > "$out/x2_wmt_${row}.log" 2>&1 || tail -5 "$out/x2_wmt_${row}.log"
  grep -E 'max_rel|tokens_per_s|scaling|identical|us_per' "$out/x2_wmt_${row}.json" | head -20
done
for i in 0 1; do
  CUDA_VISIBLE_DEVICES=$i MQA_REPRO_DISTRIBUTED=1 MQA_REPRO_COORDINATOR=localhost:12355 \
  MQA_REPRO_NUM_PROCESSES=2 MQA_REPRO_PROCESS_ID=$i \
    python3 -m mqa_repro.cli parallel-check --config configs/wmt_mqa.py:gpu --steps 5 --layouts data \
    --out "$out/x2_wmt_mqa_2proc.json" > "$out/x2_2proc_$i.log" 2>&1 &
done
wait
grep -E 'losses|tokens_per_s|identical|processes' "$out/x2_wmt_mqa_2proc.json" | head; tail -3 "$out/x2_2proc_1.log"
