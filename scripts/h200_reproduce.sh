#!/usr/bin/env bash
# The gpu preset's runs on an H200 host, one process per GPU, each a list of runs (ROW@SEED). On a
# one-GPU host give only RUNS_GPU0: two processes sharing one H200 trained no faster in total than one
# after the other (the GPU is already busy with one; results/h200/logs/call5-*).
# Data, vocabularies and token caches travel as .gpu/final.tar.xz, made on a CPU machine by
#   mqa-repro reproduce --preset gpu --prepare-data --workdirs W   (+ $MQA_REPRO_DATA, the offline corpus)
# Each process writes its own results directory; both come back as one archive to merge with
# scripts/merge_results.py. Compiled programs are cached on disk, so a row's later seeds reuse them.
# usage: scripts/h200_reproduce.sh OUT RUNS_GPU0 [RUNS_GPU1]     (RUNS: comma-separated, e.g. wmt_mha@0)
# UPTRAIN0 / UPTRAIN1 (optional): issue 19's runs (scripts/uptrain_experiment.py --uptrain / --scratch
# arguments, e.g. "--uptrain g1:mean:0.05 g2:mean:0.05") for that GPU after its reproduce runs, from
# the wmt_mha_gpu run directory (trained by this call or by an earlier call on the same warm machine).
# The experiment records that source as it finds it (scored, decoded, parameters fingerprinted); a
# source retrained on a fresh machine goes into a results folder of its own, never an older one's
# (merge it into e.g. results/h200/uptrain2; `python -m mqa_repro.report.uptrain --results
# results/h200/uptrain --more results/h200/uptrain2 ...` reports both, each run against its source).
# TAG + REPRO_ARGS (optional): a variant of the preset, e.g. TAG=_lr0p02 REPRO_ARGS=--config.train.learning_rate=0.02,
# trained in its own work and results directories (results$TAG_gpuN) so its runs never mix with the preset's.
set -u
out=${1:?OUT}; runs0=${2:?RUNS_GPU0}; runs1=${3:-}
gd=/tmp/gd; mkdir -p $gd; [ -d $gd/work ] || tar xJf .gpu/final.tar.xz -C $gd   # kept on a warm machine
python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .gpu/whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD
export MQA_REPRO_DATA=$gd/data MQA_REPRO_CACHE=$gd/cache JAX_COMPILATION_CACHE_DIR=/tmp/jaxcache \
  NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
if [ -n "${TAG:-}" ]; then   # the variant shares the preset's vocabularies and token caches
  mkdir -p $gd/work$TAG && for d in $gd/work/data_*; do ln -sfn $d $gd/work$TAG/; done
fi
end=$(( $(date +%s) + ${LIMIT:-570} ))
go() {  # GPU RUNS UPTRAIN_ARGS
  if [ -n "$2" ]; then
    CUDA_VISIBLE_DEVICES=$1 timeout $(( end - $(date +%s) )) python3 -m mqa_repro.cli reproduce --preset gpu \
      --rows "$2" --workdirs $gd/work${TAG:-} --results /tmp/results${TAG:-}_gpu$1 --skip-bench --no-tables \
      --config.train.progress=false ${REPRO_ARGS:-} >> $out/gpu$1.log 2>&1
    echo "gpu$1 reproduce exit $?" >> $out/gpu$1.log
  fi
  if [ -n "$3" ]; then
    CUDA_VISIBLE_DEVICES=$1 timeout $(( end - $(date +%s) )) python3 scripts/uptrain_experiment.py \
      --source $gd/work/wmt_mha_gpu --workdirs $gd/work --results /tmp/results_uptrain_gpu$1 $3 \
      >> $out/gpu$1.log 2>&1
    echo "gpu$1 uptrain exit $?" >> $out/gpu$1.log
  fi
}
nvidia-smi dmon -s u -d 10 > $out/dmon.log 2>&1 & mon=$!   # GPU load during the call (results/h200/logs/callN-dmon.log)
go 0 "$runs0" "${UPTRAIN0:-}" & p0=$!
[ -n "$runs1${UPTRAIN1:-}" ] && { go 1 "$runs1" "${UPTRAIN1:-}" & p1=$!; }
wait $p0 ${p1:-}
kill $mon
tar cJf $out/results.tar.xz -C /tmp $(cd /tmp && ls -d results*_gpu* 2>/dev/null)
grep -hE "done in|FAILED|skipped|exit" $out/gpu*.log
