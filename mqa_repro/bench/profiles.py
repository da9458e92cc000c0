"""Where a step's device time goes: jax.profiler traces summed per kernel and per kind of kernel, so
a missed target can be explained by what the step spends its time on."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any


def trace_kernel_totals(trace_dir: str | os.PathLike) -> dict[str, float]:
  """Device µs per kernel name, summed over the newest jax.profiler Perfetto trace under trace_dir."""
  traces = sorted(Path(trace_dir).rglob('perfetto_trace.json.gz'), key=lambda f: f.stat().st_mtime)
  if not traces:
    return {}
  events = json.load(gzip.open(traces[-1])).get('traceEvents', [])
  pids = {e['pid']: e.get('args', {}).get('name', '') for e in events if e.get('ph') == 'M'
          and e.get('name') == 'process_name'}
  totals: dict[str, float] = {}
  for e in events:
    if e.get('ph') == 'X' and ('/device:GPU' in pids.get(e.get('pid'), '') or
                               'TPU' in pids.get(e.get('pid'), '')):
      totals[e['name']] = totals.get(e['name'], 0.0) + float(e.get('dur', 0.0))
  if not totals:  # no device stream (the CPU backend): every timed event, host ones included
    for e in events:
      if e.get('ph') == 'X':
        totals[e['name']] = totals.get(e['name'], 0.0) + float(e.get('dur', 0.0))
    totals[HOST_EVENTS] = 0.0  # marks totals that are not device time
  return totals


HOST_EVENTS = '(host events: no device stream in the trace)'


# Kernel names as XLA:GPU and cuBLAS/cuDNN/Triton print them, by what the kernel does.
_CATEGORIES = (('matmul', ('gemm', 'cublas', 'cutlass', 'nvjet', 'xmma', 'sm90_', 'sm80_', 'dot')),
               ('attention kernel', ('decode_attention', 'pallas')),
               ('collective', ('nccl', 'all-reduce', 'all_reduce', 'all-gather')),
               ('copy/memset', ('memcpy', 'memset', 'copy')),
               ('reduce fusion', ('reduce', 'scatter', 'sort', 'topk')),
               ('elementwise fusion', ('fusion', 'loop', 'convert', 'transpose', 'broadcast')))


def kernel_category(name: str) -> str:
  low = name.lower()
  return next((cat for cat, keys in _CATEGORIES if any(k in low for k in keys)), 'other')


def summarize_trace(totals: dict[str, float], per: int, wall_seconds: float | None = None,
                    top: int = 12, traced_seconds: float | None = None) -> dict[str, Any]:
  """Top kernels and per-category device time, each per `per` (steps traced), with the share of the
  step the device was busy: the device time over `wall_seconds`, the step timed WITHOUT the tracer
  (kernels of one stream; the rest is launch and host time). A traced step is many times slower than
  an untraced one (the tracer's own overhead), so it is recorded (`traced_seconds`) but never the
  denominator."""
  total = sum(totals.values()) or 1.0
  ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
  cats: dict[str, float] = {}
  for name, us in totals.items():
    cats[kernel_category(name)] = cats.get(kernel_category(name), 0.0) + us
  out = {'kernels': [{'kernel': name[:120], 'category': kernel_category(name), 'us_per_step': us / per,
                      'share': us / total} for name, us in ranked],
         'categories': {c: {'us_per_step': us / per, 'share': us / total}
                        for c, us in sorted(cats.items(), key=lambda kv: -kv[1])},
         'device_us_per_step': total / per}
  if wall_seconds and HOST_EVENTS not in totals:
    out['wall_us_per_step'] = wall_seconds * 1e6
    out['device_busy_fraction'] = total / per / (wall_seconds * 1e6)
  if traced_seconds:
    out['traced_wall_us_per_step'] = traced_seconds * 1e6
  return out
