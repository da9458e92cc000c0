#!/usr/bin/env bash
# Issue 14 sizing, fourth round (2-GPU H200): is peak learning rate 0.03 stable for the rows most
# likely to diverge (multi-query; one head of d_k 128)? 1500 steps each, through the warm-up peak.
set -u
out=${1:?OUT}
gd=/tmp/gd; mkdir -p $gd; tar xJf .gpu/bundle.tar.xz -C $gd
python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
export MQA_REPRO_DATA=$gd/data NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
for g in 0 1; do row=$([ $g = 0 ] && echo mqa || echo h1_dk128)
  CUDA_VISIBLE_DEVICES=$g timeout 200 python3 scripts/h200_sizing.py --workdir /tmp/sz_$row --row $row \
    --out $out/wmt_lr03_$row.json --task translate --shared $gd/shared_translate --steps 1500 \
    --eval-every 250 --set train.learning_rate=0.03 --set train.log_every=50 > $out/wmt_lr03_$row.log 2>&1 &
done
wait
for f in $out/*.json; do echo "== $f"; python3 -c "
import json,sys
for c in json.load(open('$f'))['curve']: print(c['step'], round(c['train_loss'],3), round(c['grad_norm'],3), round(c.get('eval_newstest2013_ln_ppl',0),3))"; done
