"""Gather the JSON that GPU runs wrote under $OUT into results/gpu/, and merge Table 2.

Each source file keeps its own provenance; results/gpu/bench.json takes the decoder columns from the
decode run and the training columns from the training run, and lists both sources.
A run with another decode-attention path (`bench --attention-impl pallas`) adds its greedy and beam
columns with the suffix `_<impl>` (several such files merge by variant, later ones win); rows
measured before the sequential roofline existed get it computed from the same dimensions and the
run's own measured hardware (mqa_repro.bench.roofline).
usage: python scripts/collect_gpu_results.py --decode D.json --train T.json [--train-override T2.json]
       [--alt A.json ...] [--sweeps S.json ...] [--profile P.json] [--kernels K.json]
       --out results/gpu/bench.json
"""

import argparse
import json
from pathlib import Path

from mqa_repro import bench

TRAIN_KEYS = ('train_batch', 'train_len', 'train_step_s', 'train_us_per_token', 'train_model_flops',
              'train_mfu_vs_measured_peak', 'train_mfu_vs_datasheet', 'train_profile')
ALT_PREFIXES = ('greedy_decoder', 'greedy_roofline', 'greedy_sequential', 'beam_decoder', 'beam_roofline',
                'beam_vs_greedy')


def add_sequential(row: dict, setting: dict, hw: dict) -> None:
  """Greedy roofline columns (the sequential one included) for a row measured before they existed."""
  if 'greedy_decoder_ms_per_step' in row and 'greedy_sequential_roofline_fraction' not in row:
    row.update(bench.greedy_roofline(bench.bench_spec(row['variant'], setting['size']), setting, hw,
                                     row['greedy_decoder_ms_per_step'] / 1e3))


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument('--decode', required=True)
  p.add_argument('--train', required=True)
  p.add_argument('--train-override', action='append', default=[])
  p.add_argument('--alt', '--greedy-alt', action='append', default=[])
  p.add_argument('--kernels')
  p.add_argument('--sweeps', action='append', default=[],
                 help='sweep files, merged in order (a later point replaces an earlier one)')
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
  for row in decode['table2']:
    add_sequential(row, decode['setting'], decode['hardware'])
  for i, path in enumerate(a.alt):
    alt = json.load(open(path))
    impl = alt['setting'].get('attention_impl', f'alt{i}')
    sources[f'alt_{i}_{impl}'] = {'file': Path(path).name, 'provenance': alt['provenance'],
                                  'hardware': alt['hardware'],
                                  'variants': [r['variant'] for r in alt['table2']]}
    by_variant = {r['variant']: r for r in alt['table2']}
    for row in decode['table2']:
      r = by_variant.get(row['variant'])
      if r:
        add_sequential(r, alt['setting'], alt['hardware'])
        row.update({f'{k}_{impl}': v for k, v in r.items() if k.startswith(ALT_PREFIXES)})
  for row in decode['table2']:  # greedy and beam of one path may come from different files
    pre = 'beam_decoder_us_per_hypothesis_'
    for impl in {k[len(pre):] for k in row if k.startswith(pre)}:
      g = row.get(f'greedy_decoder_us_per_token_{impl}')
      if g:
        row[f'beam_vs_greedy_per_hypothesis_{impl}'] = row[f'beam_decoder_us_per_hypothesis_{impl}'] / g
  if a.kernels:
    k = json.load(open(a.kernels))
    decode['kernels'] = k['kernels']
    sources['kernels'] = {'file': Path(a.kernels).name, 'provenance': k['provenance'],
                          'hardware': k['hardware']}
  if a.sweeps:
    points: dict[tuple, dict] = {}
    for i, path in enumerate(a.sweeps):
      s = json.load(open(path))
      for kind, rows in s['sweeps'].items():
        for r in rows:
          points[(kind, r['variant'], r['x'])] = {**r, 'source': Path(path).name}
      sources[f'sweeps_{i}'] = {'file': Path(path).name, 'provenance': s['provenance']}
    decode['sweeps'] = {kind: [r for (k, _, _), r in points.items() if k == kind]
                        for kind in ('length', 'batch', 'kv_heads')}
  if a.profile:
    prof = json.load(open(a.profile))
    decode['profiles'] = prof.get('profiles', {})
    sources['profiles'] = {'file': Path(a.profile).name, 'provenance': prof['provenance']}
  decode['sources'] = sources
  Path(a.out).write_text(json.dumps(decode, indent=1))


if __name__ == '__main__':
  main()
