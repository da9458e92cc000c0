#!/usr/bin/env bash
# Issue 14 sizing, third round on a 2-GPU H200 host (after results/h200/sizing/): the WMT row at the
# 3500 steps with peak learning rates 0.03 and 0.05 (0.02 beat the paper's 0.01 in round 2); the LM
# with dropout 0.2/0.1/0.1 on the offline + extra English at 3000 steps, peak rate 0.01 and 0.02. usage: scripts/h200_sizing2.sh OUT
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
lm="--task lm --shared $gd/shared_lm --english $gd/english --extra-english --steps 3000 --eval-every 250 --set model.dropout_rate=0.2 --set model.attention_dropout_rate=0.1 --set model.relu_dropout_rate=0.1"
( run 0 wmt_lr03 $wmt --set train.learning_rate=0.03
  LIMIT=220 run 0 lmx_lr02 $lm --set train.learning_rate=0.02 ) &
( run 1 wmt_lr05 $wmt --set train.learning_rate=0.05
  LIMIT=220 run 1 lmx_lr01 $lm ) &
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
