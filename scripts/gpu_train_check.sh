#!/usr/bin/env bash
# Issue 4 on one GPU: a tiny and a medium ('gpu' size) config trained with the real CLI on the offline
# corpus (carried as .gpu/corpus/*.xz with pre-trained vocabularies), then the decoder sweeps.
# usage: scripts/gpu_train_check.sh OUT
set -u
out=${1:?OUT}
common="--config.data.source=text --config.data.train_files=.gpu/corpus/train \
 --config.data.dev_files=.gpu/corpus/dev --config.data.max_eval_examples=1000 --config.train.log_every=50"
python3 -m mqa_repro.cli train --config configs/wmt_mqa.py:tiny --workdir /tmp/w_tiny $common \
  --config.data.vocab_path=.gpu/vocab1k.model --config.train.num_train_steps=300 \
  --config.train.eval_every=300 --config.train.progress=false > "$out/train_tiny.log" 2>&1
tail -2 "$out/train_tiny.log"; cp /tmp/w_tiny/metrics.jsonl "$out/train_tiny_metrics.jsonl"
python3 -m mqa_repro.cli train --config configs/wmt_mqa.py:gpu --workdir /tmp/w_gpu $common \
  --config.data.vocab_path=.gpu/vocab16k.model --config.train.num_train_steps=300 \
  --config.train.eval_every=300 --config.train.progress=false > "$out/train_gpu.log" 2>&1
tail -2 "$out/train_gpu.log"; cp /tmp/w_gpu/metrics.jsonl "$out/train_gpu_metrics.jsonl"
python3 -m mqa_repro.cli bench --size paper --sweeps-only --out "$out/bench_sweeps.json" 2>&1 \
  | grep --line-buffered '^bench'
