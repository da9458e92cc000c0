"""One benchmark run: the device's ceilings, then the parts asked for, into one JSON rewritten after
every piece (a run cut short still leaves what it measured)."""

from __future__ import annotations

import os
from typing import Any, Sequence

from mqa_repro.bench import kernels as kernels_lib
from mqa_repro.bench import lm_decode as lm_lib
from mqa_repro.bench.ceilings import measure_hardware
from mqa_repro.bench.record import provenance, read_json, write_json
from mqa_repro.bench.sweeps import sweep
from mqa_repro.bench.table2 import PARTS, SETTINGS, VARIANTS, bench_variant, profile_decode


def default_reorder(attention_impl: str) -> str:
  """Beam search's cache reorder that goes with a decode-attention path (decode.model_reorder)."""
  return 'prefix' if attention_impl == 'xla' else 'pallas'


def run_benchmark(size: str = 'paper', variants: Sequence[str] = tuple(VARIANTS), sweeps: bool = True,
                  out: str | os.PathLike | None = None, argv: Sequence[str] | None = None,
                  log=print, table2: bool = True, profile_dir: str | None = None,
                  parts: Sequence[str] = PARTS, kernels: bool = False,
                  sweep_points: dict[str, list[int]] | None = None,
                  train_overrides: Sequence[str] = (), attention_impl: str = 'xla',
                  beam_reorder: str | None = None, lm_decode: lm_lib.LmDecodeOptions | None = None,
                  torch_probes: bool = True) -> dict[str, Any]:
  """Measure Table 2 (the `parts` columns), the sweeps, the decode-attention kernels and the LM
  decoding benchmark (with `lm_decode` options, or 'lm_decode' in `parts`) on this device; write
  JSON to `out` if given. `train_overrides`: ``--config.KEY=VALUE`` items for the training part.
  LM decoding points already in `out` are kept and not measured again; the rest of `out` is replaced."""
  beam_reorder = beam_reorder or default_reorder(attention_impl)
  if 'lm_decode' in parts and lm_decode is None:
    lm_decode = lm_lib.LmDecodeOptions(attention_impl=attention_impl)
  previous = read_json(out) if lm_decode else None
  hw = measure_hardware(size, with_torch=torch_probes, log=log)
  result: dict[str, Any] = {
      'provenance': provenance(argv),
      'setting': {'size': size, **SETTINGS[size], 'attention_impl': attention_impl,
                  'beam_reorder': beam_reorder},
      'hardware': hw}

  def save():
    if out:
      write_json(out, result)

  table_parts = [p for p in parts if p in PARTS]
  if kernels:
    result['kernels'] = []
    kernels_lib.kernel_bench(size, hw, log, rows=result['kernels'], save=save)
  if table2 and table_parts:
    result['table2'] = []
    for v in variants:
      result['table2'].append(bench_variant(v, size, hw, log, table_parts, profile_dir, train_overrides,
                                            attention_impl, beam_reorder))
      save()
  for kind in [k for k in ('greedy', 'beam') if profile_dir and table2 and k in table_parts]:
    # 'profiles' (greedy) keeps its earlier layout: variant -> top kernels
    key = 'profiles' if kind == 'greedy' else 'beam_profiles'
    result[key] = {}
    for v in variants:
      summary = profile_decode(v, size, profile_dir, kind, attention_impl=attention_impl,
                               beam_reorder=beam_reorder)
      result[key][v] = summary['kernels'] if kind == 'greedy' else summary
      log(f'bench: {kind} profile {v}: ' + '; '.join(
          f"{c} {x['us_per_step']:.0f} us" for c, x in summary['categories'].items()) + ' per step')
      save()
  if sweeps:
    result['sweeps'] = {'length': [], 'batch': [], 'kv_heads': []}
    sweep(size, hw, variants, log, result['sweeps'], save, sweep_points, attention_impl)
  if lm_decode:
    result['lm_decode'] = {}
    lm_lib.run_lm_decode(size, hw, lm_decode, log, result['lm_decode'], save,
                         (previous or {}).get('lm_decode'), {**result['provenance'], 'hardware': {
                             k: hw[k] for k in ('ceiling_GBps', 'ceiling_TFLOPs', 'ceiling_basis')}})
  save()
  if out:
    log(f'bench: wrote {out}')
  return result
