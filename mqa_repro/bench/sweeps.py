"""Decoder µs/token against target length, batch and kv heads g, each point beside its roofline.

Each point times a step whose cache holds exactly `length` live positions (a cache of length + 8 slots,
8 steps), so it is that length's steady-state cost; the memory is a zero K/V of the encoder's shapes
(the step's cost does not depend on its values).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from mqa_repro import costs
from mqa_repro.nn import transformer as mdl
from mqa_repro.bench.models import bench_spec, empty_cache, encode_memory, init_params
from mqa_repro.bench.table2 import SETTINGS
from mqa_repro.bench.timing import Budget, median_time, out_of_memory

SWEEPS = {'paper': dict(length=[128, 1024, 4096], length_batch=128,
                        batch=[1, 64, 1024], kv_heads=[1, 2, 4, 8]),
          'tiny': dict(length=[8, 16, 32], length_batch=4, batch=[1, 4, 8], kv_heads=[1, 2, 8])}


def time_steps(model, params, batch: int, source_len: int, live: int, steps: int = 8) -> float:
  """Seconds per decoder step with `live` positions already in a cache of `live + steps` slots."""
  inputs = jnp.full((batch, source_len), 5, jnp.int32)
  # The step's cost does not depend on the memory's values: a zero K/V of the encoder's shapes (all
  # source positions valid) saves compiling the encoder for every sweep point.
  memory = jax.tree_util.tree_map(lambda a: jnp.ones(a.shape, a.dtype) if a.dtype == jnp.bool_
                                  else jnp.zeros(a.shape, a.dtype),
                                  jax.eval_shape(lambda p, x: encode_memory(model, p, x), params, inputs))

  def run(p, mem):
    cache = empty_cache(model, p, mem, batch, live + steps, position=live)

    def body(_, carry):
      tokens, cache = carry
      logits, cache = model.apply({'params': p}, tokens, cache, method=mdl.Transformer.step)
      return jnp.argmax(logits, -1).astype(jnp.int32), cache
    return jax.lax.fori_loop(0, steps, body, (jnp.ones((batch, 1), jnp.int32), cache))[0]
  return median_time(run, params, memory, repeats=3) / steps


def point_key(kind: str, p: dict[str, Any]) -> tuple:
  """What identifies a point of sweep `kind` in a file (resume and merge skip one already there)."""
  return kind, p['variant'], p['x'], p.get('attention_impl')


def sweep(size: str, hw: dict[str, Any], variants: Sequence[str], log,
          out: dict[str, list] | None = None, save: Callable[[], None] = lambda: None,
          points: dict[str, list[int]] | None = None, attention_impl: str = 'xla',
          budget: Budget | None = None) -> dict[str, list]:
  """`points` replaces SWEEPS[size]'s lists (length, batch, kv_heads). `out` may hold an earlier
  run's points (bench --resume): those are not timed again, and must have this run's attention
  implementation. `budget`: no point starts that would end past it."""
  s, sw = SETTINGS[size], {**SWEEPS[size], **(points or {})}
  out = {'length': [], 'batch': [], 'kv_heads': []} if out is None else out
  budget = budget or Budget(None)
  for kind, kept in out.items():
    other = {str(p.get('attention_impl')) for p in kept} - {attention_impl}
    if other:
      raise ValueError(f'--out holds {kind} sweep points measured with --attention-impl '
                       f'{sorted(other)[0]}, not {attention_impl}; choose another --out, or run '
                       'without --resume to replace them')
  done = {point_key(kind, p) for kind, kept in out.items() for p in kept}

  last: dict[str, Any] = {}  # the previous point's params, reused while the spec is unchanged
  timed: dict[tuple, float] = {}

  def point(kind, variant, x, spec, batch, live):
    key = point_key(kind, {'variant': variant, 'x': x, 'attention_impl': attention_impl})
    if key in done or not budget.allows('sweep'):
      return
    start = time.perf_counter()
    model = mdl.Transformer(spec)
    if last.get('spec') != spec:
      last.clear()
      last.update(spec=spec, params=init_params(model, s['source_len'], 8))
    params = last['params']
    try:
      key = (spec, batch, live)  # e.g. kv-heads g = h is the batch sweep's multi-head point
      sec = timed[key] if key in timed else time_steps(model, params, batch, s['source_len'], live)
      timed[key] = sec
    except Exception as e:
      if not out_of_memory(e):
        raise
      log(f'bench: sweep {kind} {variant} x={x} does not fit; skipped')
      return
    budget.record('sweep', start)
    live_read = costs.mean_live(spec.window, 1, live)   # the step writes position `live`, reads it too
    cost = costs.decoder_step_cost(spec, batch, batch, s['source_len'], live_read)
    roof = costs.roofline(cost, hw)
    # each point says its own shapes, so a plot or table of it can name them
    out[kind].append({'variant': variant, 'x': x, 'batch': batch, 'live': live,
                      'source_len': s['source_len'], 'attention_impl': attention_impl,
                      'dtype': spec.dtype, 'us_per_token': sec / batch * 1e6,
                      'roofline_us_per_token': roof['seconds'] / batch * 1e6, 'bound': roof['bound'],
                      'roofline_fraction': roof['seconds'] / sec})
    save()
    log(f"bench: sweep {kind:8s} {variant:9s} x={x:<5} {sec / batch * 1e6:9.3f} us/token "
        f"(roofline {roof['seconds'] / batch * 1e6:.3f})")

  for variant in variants:
    for length in sw['length']:
      spec = bench_spec(variant, size, attention_impl=attention_impl,
                        max_length=max(length + 16, 256))
      point('length', variant, length, spec, sw['length_batch'], length)
  for variant in [v for v in variants if v in ('mha', 'mqa')]:
    for batch in sw['batch']:
      point('batch', variant, batch, bench_spec(variant, size, attention_impl=attention_impl), batch,
            s['target_len'] // 2)
  for g in sw['kv_heads']:
    spec = bench_spec('mha', size, attention_impl=attention_impl, num_kv_heads=g)
    point('kv_heads', f'g{g}', g, spec, s['batch'], s['target_len'] // 2)
  return out
