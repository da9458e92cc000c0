"""One benchmark run: the device's ceilings, then the parts asked for, into one JSON rewritten after
every piece (a run cut short still leaves what it measured).

With `resume`, the output file's Table 2 rows, LM decoding points, kernel timings and sweep points
(of the same setting) are kept and only what is missing is measured: together with a time budget, one
command run again and again finishes a benchmark longer than one sitting. Parts a resumed run does not
measure (profiles too) are kept as they were, so several commands can fill one file. Each run is
listed under 'runs' (provenance and the ceilings it measured); every Table 2 row and LM point names
its run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

from mqa_repro.bench import kernels as kernels_lib
from mqa_repro.bench import lm_decode as lm_lib
from mqa_repro.bench.ceilings import HOST, measure_hardware
from mqa_repro.bench.sweeps import sweep
from mqa_repro.bench.table2 import PARTS, SETTINGS, VARIANTS, bench_variant, profile_decode
from mqa_repro.bench.timing import Budget
from mqa_repro.nn import decode_impl
from mqa_repro.provenance import collect
from mqa_repro.report.records import BenchRecord, read_json, write_environment, write_json


# The parts of a benchmark file; with --resume those a run does not measure stay as they were, so one
# file collects a benchmark part by part (scripts/h200_bench.sh).
PARTS_KEPT = ('table2', 'lm_decode', 'kernels', 'sweeps', 'profiles', 'beam_profiles')


def _carried_rows(previous: dict[str, Any] | None, setting: dict[str, Any]) -> list[dict[str, Any]]:
  """Table 2 rows of the file being resumed; refused when they were measured at another setting."""
  rows = list((previous or {}).get('table2', []))
  if rows and previous.get('setting') != setting:
    raise ValueError(f"--out holds Table 2 rows of another setting ({previous.get('setting')}); "
                     'choose another --out, or run without --resume to replace them')
  return rows


def _resumed_hardware(previous: dict[str, Any] | None, size: str, torch_probes: bool,
                      log) -> dict[str, Any] | None:
  """--resume on the device that measured `previous`: its hardware record (ceilings, probes) again,
  so a run continued over several commands divides by one set of ceilings and spends no time
  re-probing them. None (probe afresh) on another device, platform, size of probes or torch setting."""
  import jax
  hw = (previous or {}).get('hardware')
  dev = jax.devices()[0]
  if not hw or hw.get('device') != dev.device_kind or hw.get('platform') != dev.platform:
    return None
  if (size == 'tiny' or dev.platform == 'cpu') != (hw.get('copy_buffer_bytes', 0) == 2 * HOST[0]):
    return None
  if torch_probes != any(p.get('name', '').startswith('torch') for p in hw.get('probes', [])):
    return None
  log(f"bench: ceilings of the run being resumed ({hw['device']}: copy {hw['copy_GBps']:.0f} GB/s, "
      f"matmul {hw['matmul_TFLOPs']:.1f} TFLOP/s); not probed again")
  return hw


def run_benchmark(size: str = 'paper', variants: Sequence[str] = tuple(VARIANTS), sweeps: bool = True,
                  out: str | os.PathLike | None = None, argv: Sequence[str] | None = None,
                  log=print, table2: bool = True, profile_dir: str | None = None,
                  parts: Sequence[str] = PARTS, kernels: bool = False,
                  sweep_points: dict[str, list[int]] | None = None,
                  train_overrides: Sequence[str] = (), attention_impl: str = 'xla',
                  beam_reorder: str | None = None, lm_decode: lm_lib.LmDecodeOptions | None = None,
                  torch_probes: bool = True, resume: bool = False,
                  time_budget: float | None = None) -> dict[str, Any]:
  """Measure Table 2 (the `parts` columns), the sweeps, the decode-attention kernels and the LM
  decoding benchmark (with `lm_decode` options, or 'lm_decode' in `parts`) on this device; write
  JSON to `out` if given. `train_overrides`: ``--config.KEY=VALUE`` items for the training part.
  `resume`: keep `out`'s Table 2 rows and LM points and measure the rest; `time_budget` (seconds):
  start no Table 2 variant or LM point that would end past it."""
  beam_reorder = beam_reorder or decode_impl.beam_reorder(attention_impl)
  table_parts = [p for p in parts if p in PARTS]
  if 'lm_decode' in parts and lm_decode is None:
    lm_decode = lm_lib.LmDecodeOptions(attention_impl=attention_impl)
  previous = read_json(out) if resume else None
  budget = Budget(time_budget)
  hw = _resumed_hardware(previous, size, torch_probes, log) or measure_hardware(
      size, with_torch=torch_probes, log=log)
  prov = collect('mqa-repro bench', argv)
  if out:   # the exact package versions, once per results folder (report.records.write_environment)
    prov['environment'] = write_environment(Path(out).parent, log)['id']
  runs = list((previous or {}).get('runs', [])) + [
      {**prov, 'hardware': {k: hw[k] for k in ('ceiling_GBps', 'ceiling_TFLOPs', 'ceiling_basis')}}]
  run = len(runs) - 1
  setting = {'size': size, **SETTINGS[size], 'attention_impl': attention_impl,
             'beam_reorder': beam_reorder, 'parts': table_parts}
  # With --resume every part of `out` is in `result` from the start, so each save rewrites the whole
  # file: a run cut inside one part (a command's time limit) loses none of the parts measured before.
  carried = {k: previous[k] for k in PARTS_KEPT if previous and k in previous}
  result: BenchRecord = {'provenance': prov, 'setting': setting, 'hardware': hw, 'runs': runs,
                         **carried}
  if 'table2' in carried and not (table2 and table_parts):
    result['setting'] = previous['setting']   # the carried rows' setting, not this run's

  def save():
    if out:
      write_json(out, result)

  if kernels:
    rows = result.setdefault('kernels', [])
    kernels_lib.kernel_bench(size, hw, log, rows=rows, save=save, budget=budget)
  if table2 and table_parts:
    rows = result['table2'] = _carried_rows(previous, setting)
    done = {r['variant'] for r in rows}
    for v in [v for v in variants if v not in done]:
      if not budget.allows('table2'):
        break
      start = time.perf_counter()
      rows.append({**bench_variant(v, size, hw, log, table_parts, profile_dir, train_overrides,
                                   attention_impl, beam_reorder), 'run': run})
      budget.record('table2', start)
      save()
  for kind in [k for k in ('greedy', 'beam') if profile_dir and table2 and k in table_parts]:
    # 'profiles' (greedy), 'beam_profiles': variant -> the trace's summary (kernels, categories,
    # device time and busy share); a resumed run keeps the variants profiled before, traces the others
    key = 'profiles' if kind == 'greedy' else 'beam_profiles'
    result.setdefault(key, {})
    for v in [v for v in variants if v not in result[key]]:
      if not budget.allows(('profile', kind)):
        break
      start = time.perf_counter()
      summary = profile_decode(v, size, profile_dir, kind, attention_impl=attention_impl,
                               beam_reorder=beam_reorder)
      budget.record(('profile', kind), start)
      result[key][v] = summary
      log(f'bench: {kind} profile {v}: ' + '; '.join(
          f"{c} {x['us_per_step']:.0f} us" for c, x in summary['categories'].items()) + ' per step')
      save()
  if sweeps and not budget.stopped:
    points = result.setdefault('sweeps', {'length': [], 'batch': [], 'kv_heads': []})
    sweep(size, hw, variants, log, points, save, sweep_points, attention_impl, budget)
  if lm_decode and not budget.stopped:
    result['lm_decode'] = {}
    lm_lib.run_lm_decode(size, hw, lm_decode, log, result['lm_decode'], save,
                         (previous or {}).get('lm_decode'), run, budget)
  if budget.stopped:
    result['stopped'] = budget.stopped
    log(f'bench: {budget.stopped}')
  save()
  if out:
    log(f'bench: wrote {out}')
  return result
