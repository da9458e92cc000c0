"""What beam search's cache reorder costs: milliseconds per beam step with each of kv_cache.reorder's
schemes ('full': whole leaves; 'prefix': the written slots only; 'none': no reorder, wrong beams, the
baseline cost of a step), and the gathers alone. ``mqa-repro bench --reorder-cost ROWS`` runs it;
results/notes/beam_reorder.md holds the measurements that chose 'prefix' as XLA's scheme.

Timed round-robin, each variant compiled and warmed up first, so that load from other processes hits
every variant alike; the minimum over repeats is the least disturbed run (the median is kept too).
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mqa_repro import config as cfg
from mqa_repro.data.tokenizer import EOS_ID
from mqa_repro.decoding.batch import model_step, unbox
from mqa_repro.decoding.search import NEG_INF, beam_search
from mqa_repro.nn import kv_cache, transformer


def _timings(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
  """Seconds per call of each fn, compiled and warmed up first, then timed round-robin so that load
  from other processes hits every variant alike (report the min: the least disturbed run)."""
  for fn in fns.values():
    jax.block_until_ready(fn())
  times: dict[str, list[float]] = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      times[name].append(time.perf_counter() - start)
  return times


def reorder_cost(row: str = 'mha', *, d_model: int = 512, layers: int = 6, sentences: int = 8,
                 beam_size: int = 4, slots: int = 128, steps: int | None = None, source_length: int = 32,
                 repeats: int = 3, dtype: str = 'float32') -> dict[str, Any]:
  """Milliseconds per beam step with each reorder scheme (kv_cache.reorder), on a random translate
  model.

  The model has h = 8 heads of d_k = d_model / 8 (the paper's shape at a smaller d_model) and
  d_ff = 4 · d_model in every row (no equal-parameter widening: rows differ only in attention); the cache
  holds `slots` positions (the loop's max_len) and the search runs exactly `steps` steps (default all
  `slots`): EOS is banned and every row's limit is `steps`, so no scheme stops early. steps < slots
  is the usual case in translation, where max_len is set by the batch's longest source and most
  sentences end well before it. 'none' (no reorder; wrong beams) is the baseline cost of a step.
  """
  steps = steps or slots
  c = cfg.row_config('translate', row, 'tiny')
  m = c.model
  m.d_model, m.qk_dim, m.v_dim = d_model, d_model // 8, d_model // 8
  m.d_ff, m.encoder_layers, m.decoder_layers = 4 * d_model, layers, layers
  m.vocab_size, m.max_length, m.dtype = 1024, max(slots, source_length), dtype
  model = transformer.make_model(c, dropout_rate=0.0, attention_dropout_rate=0.0,
                                 relu_dropout_rate=0.0)
  rng = np.random.default_rng(0)
  inputs = jnp.asarray(rng.integers(4, 1000, (sentences, source_length)), jnp.int32)
  params = unbox(jax.jit(model.init)(jax.random.PRNGKey(0), {'inputs': inputs[:1, :4],
                                                             'targets': inputs[:1, :4]})['params'])
  cache = jax.jit(kv_cache.for_sources, static_argnums=(0, 3, 4))(model, params, inputs,
                                                                  sentences * beam_size, slots)
  base = model_step(model)

  def step(params, cache, tokens):                 # no EOS: every scheme runs exactly `steps` steps
    logits, cache = base(params, cache, tokens)
    return logits.at[..., EOS_ID].set(NEG_INF), cache

  limit = jnp.full((sentences,), steps, jnp.int32)
  out: dict[str, Any] = {'row': row, 'device': jax.devices()[0].device_kind, 'd_model': d_model,
                         'layers': layers, 'heads': m.num_heads, 'kv_heads': m.num_kv_heads,
                         'head_dim': m.qk_dim, 'window': m.window, 'sentences': sentences,
                         'beam': beam_size, 'slots': slots, 'steps': steps, 'dtype': dtype}
  schemes = ('none', 'full', 'prefix')
  fns = {}
  for scheme in schemes:
    search = jax.jit(functools.partial(beam_search, step, batch_size=sentences, beam_size=beam_size,
                                       max_len=slots, per_row_max_len=limit, reorder=scheme))
    fns[scheme] = functools.partial(search, params, cache)
  # The reorder alone: `steps` gathers of the state with a random permutation each, as in the loop.
  perms = jax.random.randint(jax.random.PRNGKey(1), (steps, sentences * beam_size), 0, beam_size)
  perms = perms + jnp.repeat(jnp.arange(sentences) * beam_size, beam_size)[None]
  for scheme in ('full', 'prefix'):
    @jax.jit
    def gathers(state, scheme=scheme):
      def body(i, state):
        return kv_cache.reorder_state(state, perms[i], i + 1 if scheme == 'prefix' else None)
      return lax.fori_loop(0, steps, body, state)
    fns[f'gather_only_{scheme}'] = functools.partial(gathers, cache['state'])
  times = _timings(fns, repeats)
  for name, ts in times.items():
    out[f'{name}_ms_per_step'] = 1e3 * min(ts) / steps
    out[f'{name}_ms_per_step_median'] = 1e3 * float(np.median(ts)) / steps
  state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(cache['state']))
  out['cache_state_mib'] = state_bytes / 2 ** 20
  out['full_gather_mib_per_step'] = 2 * state_bytes / 2 ** 20    # read + write every slot
  out['full_gather_gb_per_s'] = 2 * state_bytes / (out['gather_only_full_ms_per_step'] * 1e6)
  for scheme in ('full', 'prefix'):
    out[f'{scheme}_overhead'] = out[f'{scheme}_ms_per_step'] / out['none_ms_per_step'] - 1
  return out
