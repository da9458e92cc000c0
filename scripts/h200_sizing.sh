#!/usr/bin/env bash
# Issue 14 sizing on a 2-GPU H200 host: the WMT learning curve (GPU 0) and two LM curves (GPU 1:
# the offline English corpus, then with the extra English of ../shared/data). Data, vocabularies and
# token caches travel as .gpu/bundle.tar.xz (scripts/h200_sizing.py --prepare builds them on a CPU).
# usage: scripts/h200_sizing.sh OUT
set -u
out=${1:?OUT}
gd=/tmp/gd; mkdir -p $gd; tar xJf .gpu/bundle.tar.xz -C $gd
# ml_collections is not on the GPU image: it travels as a wheel
python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
export MQA_REPRO_DATA=$gd/data NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
run() {  # GPU NAME ARGS...
  local gpu=$1 name=$2; shift 2
  CUDA_VISIBLE_DEVICES=$gpu timeout ${LIMIT:-540} python3 scripts/h200_sizing.py --workdir /tmp/sz_$name \
    --out $out/$name.json "$@" > $out/$name.log 2>&1
  cp /tmp/sz_$name/metrics.jsonl $out/${name}_metrics.jsonl 2>/dev/null
}
run 0 wmt --task translate --shared $gd/shared_translate --steps 5000 --eval-every 250 --decode-timing &
( LIMIT=260 run 1 lm --task lm --shared $gd/shared_lm --english $gd/english --steps 4000 --eval-every 250
  LIMIT=260 run 1 lmx --task lm --shared $gd/shared_lm --english $gd/english --extra-english --steps 4000 \
    --eval-every 250 ) &
wait
for f in $out/*_metrics.jsonl; do echo "== $f"; python3 - "$f" <<'PY'
import json, sys
for line in open(sys.argv[1]):
  r = json.loads(line)
  if any(k.startswith('eval_') for k in r):
    print(r['step'], round(r.get('step_time_s', 0)*1e3, 1), {k: round(v, 3) for k, v in r.items() if k.startswith('eval_') and 'tokens' not in k and 'words' not in k})
PY
done
tail -n 3 $out/*.log
