"""Gather the JSON that GPU runs wrote under $OUT into results/gpu/, and merge Table 2.

Each source file keeps its own provenance; results/gpu/bench.json takes the decoder columns from the
decode run and the training columns from the training run, and lists both sources.
usage: python scripts/collect_gpu_results.py --decode D.json --train T.json [--train-override T2.json]
       [--sweeps S.json] [--profile P.json] --out results/gpu/bench.json
"""

import argparse
import json
from pathlib import Path

TRAIN_KEYS = ('train_batch', 'train_len', 'train_step_s', 'train_us_per_token', 'train_model_flops',
              'train_mfu_vs_measured_peak', 'train_mfu_vs_datasheet')


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument('--decode', required=True)
  p.add_argument('--train', required=True)
  p.add_argument('--train-override', action='append', default=[])
  p.add_argument('--sweeps')
  p.add_argument('--profile')
  p.add_argument('--out', required=True)
  a = p.parse_args()
  decode = json.load(open(a.decode))
  sources = {'decode': {'file': Path(a.decode).name, 'provenance': decode['provenance']}}
  train = {r['variant']: r for r in json.load(open(a.train))['table2']}
  sources['train'] = {'file': Path(a.train).name, 'provenance': json.load(open(a.train))['provenance']}
  for i, path in enumerate(a.train_override):
    override = json.load(open(path))
    sources[f'train_override_{i}'] = {'file': Path(path).name, 'provenance': override['provenance'],
                                      'variants': [r['variant'] for r in override['table2']]}
    for r in override['table2']:
      train[r['variant']] = r
  for row in decode['table2']:
    row.update({k: train[row['variant']][k] for k in TRAIN_KEYS if k in train.get(row['variant'], {})})
  if a.sweeps:
    s = json.load(open(a.sweeps))
    decode['sweeps'] = s['sweeps']
    sources['sweeps'] = {'file': Path(a.sweeps).name, 'provenance': s['provenance']}
  if a.profile:
    prof = json.load(open(a.profile))
    decode['profiles'] = prof.get('profiles', {})
    sources['profiles'] = {'file': Path(a.profile).name, 'provenance': prof['provenance']}
  decode['sources'] = sources
  Path(a.out).write_text(json.dumps(decode, indent=1))


if __name__ == '__main__':
  main()
