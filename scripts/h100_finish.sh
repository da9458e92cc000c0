#!/usr/bin/env bash
# The H100 runs that finished issue 6 (2026-11-22), one device call per part, each under the
# 10-minute limit; every bench run saves after each piece, so a cut run keeps what it measured.
# results/gpu/PROVENANCE.md maps each output file to its part and commit.
#   pallas-global   Table 2 greedy + beam-4, Pallas self-attention kernel (beam reorder: XLA gather)
#   pallas-local    the same for the local variants; multi-query greedy with pallas_all
#   sweeps-a        multi-query length 4096 (the batch and kv-heads defaults ran with it), local lengths
#   sweeps-b        local length 4096, multi-head batch sweep (+ its g = 8 point)
#   sweeps-c        training profile (multi-head), kv heads 4 and 2, multi-query-local 128 / 1024
#   profiles        training profile (multi-query), beam-4 profile (multi-head), training w/o dropout
#   reorder         the beam-reorder kernel: GPU tests, then Table 2 greedy + beam-4 with it
# usage: scripts/h100_finish.sh PART OUTDIR   (GPU machine, repo root, PYTHONPATH set)
set -u
part=${1:?PART}; out=${2:?OUTDIR}
bench() {  # bench SECONDS ARGS...: one run, cut at SECONDS; keep the bench lines and any error
  timeout "$1" python3 -m mqa_repro.cli bench "${@:2}" 2>&1 | grep --line-buffered -E '^bench|Error|error:'
}
nodrop=(--config.model.dropout_rate=0.0 --config.model.attention_dropout_rate=0.0
        --config.model.relu_dropout_rate=0.0)
case $part in
  pallas-global)
    bench 570 --variants mha,mqa --parts greedy,beam --no-sweeps --attention-impl pallas \
      --beam-reorder prefix --out "$out/h100_pallas_mha_mqa.json" ;;
  pallas-local)
    bench 400 --variants mha_local,mqa_local --parts greedy,beam --no-sweeps --attention-impl pallas \
      --beam-reorder prefix --out "$out/h100_pallas_local.json"
    bench 170 --variants mqa,mqa_local --parts greedy --no-sweeps --attention-impl pallas_all \
      --out "$out/h100_pallas_all_mqa.json" ;;
  sweeps-a)
    bench 150 --sweeps-only --variants mqa --lengths 4096 --out "$out/h100_sweeps_mqa4096.json"
    bench 420 --sweeps-only --variants mha_local,mqa_local --lengths 128,1024,4096 \
      --out "$out/h100_sweeps_local.json" ;;
  sweeps-b)
    bench 330 --sweeps-only --variants mha_local,mqa_local --lengths 4096 --batches '' --kv-heads '' \
      --out "$out/h100_sweeps_local4096.json"
    bench 260 --sweeps-only --variants mha --lengths '' --batches 1,64,1024 --kv-heads 8 \
      --out "$out/h100_sweeps_mha_batch.json" ;;
  sweeps-c)
    bench 230 --variants mha,mqa --parts train --no-sweeps --profile /tmp/prof \
      --out "$out/h100_train_profile.json"
    bench 180 --sweeps-only --variants mha --lengths '' --batches '' --kv-heads 4,2 \
      --out "$out/h100_sweeps_kv42.json"
    bench 170 --sweeps-only --variants mqa_local --lengths 128,1024 --batches '' --kv-heads '' \
      --out "$out/h100_sweeps_mqa_local.json" ;;
  profiles)
    bench 140 --variants mqa --parts train --no-sweeps --profile /tmp/prof \
      --out "$out/h100_train_profile_mqa.json"
    bench 310 --variants mha --parts beam --no-sweeps --attention-impl pallas --beam-reorder prefix \
      --profile /tmp/prof --out "$out/h100_beam_profile_pallas_mha.json"
    bench 270 --variants mha --parts train --no-sweeps "${nodrop[@]}" --out "$out/h100_train_nodropout.json" ;;
  reorder)
    timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_beam_reorder.py \
      -k "gpu or kernel_equals" 2>&1 | tail -4 | tee "$out/h100_test_beam_reorder.log"
    bench 200 --variants mha,mqa --parts greedy,beam --no-sweeps --attention-impl pallas \
      --out "$out/h100_pallas_reorder_mha_mqa.json"
    bench 130 --variants mha_local,mqa_local --parts beam --no-sweeps --attention-impl pallas \
      --out "$out/h100_pallas_reorder_local.json"
    bench 230 --variants mqa_local --parts greedy,beam --no-sweeps --attention-impl pallas \
      --out "$out/h100_pallas_reorder_mqa_local.json" ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
