#!/usr/bin/env bash
# Issue 14 sizing, second round on a 2-GPU H200 host (after results/h200/sizing/): the WMT row at the
# step count that fits 5 minutes (3500) with the paper's peak learning rate 0.01 and with 0.02; the
# LM on the offline + extra English with dropout (the paper's LM recipe has none, and on 7.6M tokens
# it overfits after ~1000 steps). usage: scripts/h200_sizing2.sh OUT
set -u
out=${1:?OUT}
gd=/tmp/gd; mkdir -p $gd; tar xJf .gpu/bundle.tar.xz -C $gd
python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
export MQA_REPRO_DATA=$gd/data NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
run() {  # GPU NAME ARGS...
  local gpu=$1 name=$2; shift 2
  CUDA_VISIBLE_DEVICES=$gpu timeout ${LIMIT:-300} python3 scripts/h200_sizing.py --workdir /tmp/sz_$name \
    --out $out/$name.json "$@" > $out/$name.log 2>&1
}
wmt="--task translate --shared $gd/shared_translate --steps 3500 --eval-every 500"
lm="--task lm --shared $gd/shared_lm --english $gd/english --extra-english --steps 4000 --eval-every 250"
( run 0 wmt_lr02 $wmt --set train.learning_rate=0.02
  LIMIT=220 run 0 lmx_drop1 $lm --set model.dropout_rate=0.1 --set model.attention_dropout_rate=0.1 \
    --set model.relu_dropout_rate=0.1 ) &
( run 1 wmt_lr01 $wmt
  LIMIT=220 run 1 lmx_drop2 $lm --set model.dropout_rate=0.2 --set model.attention_dropout_rate=0.1 \
    --set model.relu_dropout_rate=0.1 ) &
wait
for f in $out/*.json; do echo "== $f"; python3 - "$f" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for c in r['curve']:
  if any(k.startswith('eval_') for k in c):
    print(c['step'], round(c.get('step_time_s', 0)*1e3, 1), {k: round(v, 3) for k, v in c.items() if k.startswith('eval_') and 'tokens' not in k and 'words' not in k})
PY
done
tail -n 2 $out/*.log
