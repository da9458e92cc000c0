#!/usr/bin/env bash
# The H100 measurements issue 6 still lacked, one device call per part (each under the 10-minute limit;
# every bench run saves after each piece, so a cut run keeps what it measured):
#   pallas-global  Table 2 greedy + beam-4 with the Pallas self-attention kernel: mha, mqa
#   pallas-local   the same for the local variants; then multi-query greedy with the kernel on
#                  cross-attention too (pallas_all: it measured 47 vs XLA's 56.5 µs per call there)
#   sweep-length   the length-sweep points the first sweep run did not reach
#   sweep-mha      batch sweep (multi-head) and the kv-heads sweep (g = 8 reuses the batch-1024 point)
#   sweep-mqa      batch sweep (multi-query), then one training step per variant traced with jax.profiler
# usage: scripts/h100_finish.sh PART OUTDIR   (GPU machine, repo root, PYTHONPATH set)
set -u
part=${1:?PART}; out=${2:?OUTDIR}
bench() {  # bench SECONDS ARGS...: one run, cut at SECONDS; keep the bench lines and any error
  timeout "$1" python3 -m mqa_repro.cli bench "${@:2}" 2>&1 | grep --line-buffered -E '^bench|Error|error:'
}
case $part in
  pallas-global)
    bench 570 --variants mha,mqa --parts greedy,beam --no-sweeps --attention-impl pallas \
      --out "$out/h100_pallas_mha_mqa.json" ;;
  pallas-local)
    bench 400 --variants mha_local,mqa_local --parts greedy,beam --no-sweeps --attention-impl pallas \
      --out "$out/h100_pallas_local.json"
    bench 170 --variants mqa,mqa_local --parts greedy --no-sweeps --attention-impl pallas_all \
      --out "$out/h100_pallas_all_mqa.json" ;;
  sweep-length)
    bench 150 --sweeps-only --variants mqa --lengths 4096 --out "$out/h100_sweeps_mqa4096.json"
    bench 420 --sweeps-only --variants mha_local,mqa_local --lengths 128,1024,4096 \
      --out "$out/h100_sweeps_local.json" ;;
  sweep-mha)
    bench 570 --sweeps-only --variants mha --lengths '' --batches 1,64,1024 --kv-heads 8,4,2,1 \
      --out "$out/h100_sweeps_mha_batch_kv.json" ;;
  sweep-mqa)
    bench 250 --sweeps-only --variants mqa --lengths '' --batches 1,64,1024 --kv-heads '' \
      --out "$out/h100_sweeps_mqa_batch.json"
    bench 320 --variants mha,mqa --parts train --no-sweeps --profile /tmp/prof \
      --out "$out/h100_train_profile.json" ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
