"""Merging benchmark records (`mqa-repro bench --out`) written by separate commands or processes:
what a record measured and the target lacks is added, with the run (provenance) that measured it.

Table 2 rows are added by variant (only at the target's setting), LM decoding points by (system,
implementation, variant, batch, new tokens), kernel timings by (case, implementation, tuning), sweep
points by (sweep, variant, x, implementation). What the target already has is kept, never replaced:
to measure a thing again, do it with `bench --resume` into the target.
"""

from __future__ import annotations

import json
from typing import Any

from mqa_repro.bench.kernels import timing_key
from mqa_repro.bench.lm_decode import point_key as lm_point_key
from mqa_repro.bench.lm_decode import ratios
from mqa_repro.bench.sweeps import point_key

RUN_ID = ('command', 'date_utc')   # a run is the same run in two files when these agree


def _run_index(runs: list[dict], run: dict) -> int:
  for i, r in enumerate(runs):
    if all(r.get(k) == run.get(k) for k in RUN_ID):
      return i
  runs.append(run)
  return len(runs) - 1


def _key(part: str, row: dict, kind: str = '') -> tuple:
  """The key each part's own resume uses."""
  if part == 'table2':
    return (row['variant'],)
  if part == 'kernels':
    return timing_key(row)
  if part == 'sweeps':
    return point_key(kind, row)
  return lm_point_key(row)


def merge(into: dict[str, Any], source: dict[str, Any], name: str) -> list[str]:
  """Add to `into` what `source` measured and `into` lacks; returns what was added, for the log.
  A `source` that is not a benchmark record, or whose Table 2 / LM setting differs from `into`'s,
  raises ValueError naming it (`name`)."""
  if 'runs' not in source or 'hardware' not in source:
    raise ValueError(f'{name}: not a benchmark record (no runs / hardware)')
  runs = into.setdefault('runs', [])
  remap = {i: _run_index(runs, r) for i, r in enumerate(source['runs'])}
  added = []

  def take(part: str, rows: list[dict], have: list[dict], kind: str = ''):
    keys = {_key(part, r, kind) for r in have}
    for r in rows:
      try:
        key = _key(part, r, kind)
      except KeyError as e:
        raise ValueError(f'{name}: a {part} entry without {e}: {json.dumps(r)[:120]}') from None
      if key not in keys:
        have.append({**r, **({'run': remap[r['run']]} if 'run' in r else {})})
        added.append(f"{part} {' '.join(map(str, key))}")

  if source.get('table2'):
    if into.get('table2') and into.get('setting') != source.get('setting'):
      raise ValueError(f"{name}: its Table 2 rows were measured at another setting than the target's")
    if not into.get('table2'):   # the setting describes the Table 2 rows
      into['setting'] = source['setting']
    take('table2', source['table2'], into.setdefault('table2', []))
  if source.get('lm_decode', {}).get('points'):
    lm = into.setdefault('lm_decode', {k: v for k, v in source['lm_decode'].items() if k != 'points'})
    if lm.get('setting') != source['lm_decode'].get('setting'):
      raise ValueError(f"{name}: its LM decoding points were measured at another setting than the target's")
    take('lm_decode', source['lm_decode']['points'], lm.setdefault('points', []))
  if source.get('kernels'):
    take('kernels', source['kernels'], into.setdefault('kernels', []))
  for kind, rows in source.get('sweeps', {}).items():
    take('sweeps', rows, into.setdefault('sweeps', {}).setdefault(kind, []), kind)
  for key in ('profiles', 'beam_profiles'):
    if key in source and key not in into:
      into[key] = source[key]
      added.append(key)
  for key in ('provenance', 'hardware'):
    if key in source:
      into.setdefault(key, source[key])
  if 'lm_decode' in into:
    into['lm_decode']['ratios'] = ratios(into['lm_decode']['points'])
  return added
