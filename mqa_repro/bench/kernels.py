"""Decode attention alone: XLA's einsums (the reference path) against tunings of the Pallas kernel,
in µs per call and the fraction of the bandwidth ceiling they reach for the bytes a call must move."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from mqa_repro import costs
from mqa_repro.bench.timing import median_time

# A case: (name, kv heads K, query heads per kv head G, beams W, memory rows B, slots S, live slots,
# cross): self-attention reads `live` of S slots (a step halfway through T = 128), cross-attention
# all S under a source mask; beam cases share one memory row among W hypotheses.
KERNEL_CASES = {
    'paper': [('mha self', 8, 1, 1, 1024, 128, 64, False), ('mha cross', 8, 1, 1, 1024, 128, 128, True),
              ('mqa self', 1, 8, 1, 1024, 128, 64, False), ('mqa cross', 1, 8, 1, 1024, 128, 128, True),
              ('mha beam cross', 8, 1, 4, 256, 128, 128, True),
              ('mqa beam cross', 1, 8, 4, 256, 128, 128, True)],
    'tiny': [('mha self', 2, 1, 1, 4, 16, 8, False), ('mqa cross', 1, 2, 2, 2, 16, 16, True)]}


def kernel_tunings(size: str, m: int) -> list[dict[str, Any]]:
  """Pallas tunings to time for M = W·G query rows per kv head ({} = the kernel's defaults)."""
  if size != 'paper':
    return [{}, dict(tensor_cores=True, block_k=8)]
  dots = [dict(tensor_cores=True, block_k=bk, num_warps=nw) for bk in (32, 64) for nw in (2, 4, 8)]
  # From M = 8 rows the CUDA-core path would hold [M, bk, H] in registers: far slower, so not timed
  # (results/notes/kernels.md).
  if m >= 8:
    return [{}] + dots + [dict(tensor_cores=True, block_k=64, num_warps=4, num_stages=3)]
  return [{}] + [dict(tensor_cores=False, block_k=bk, num_warps=nw)
                 for bk in (16, 32, 64) for nw in (1, 2, 4)] + dots[:4]


def kernel_bench(size: str, hw: dict[str, Any], log, loops: int = 20, rows: list | None = None,
                 save: Callable[[], None] = lambda: None) -> list[dict[str, Any]]:
  """µs and GB/s of one decode-attention call per case and implementation. `loops` calls run in one
  compiled loop (each query depends on the previous output), so launch gaps count but host dispatch
  does not. Bytes are what the call must read and write: the live K/V, q and the output."""
  from mqa_repro.nn.attention import attend
  from mqa_repro.kernels import decode_attention
  hd = 128 if size == 'paper' else 16
  rows = [] if rows is None else rows
  for name, kv, g, w, b, slots, live, cross in KERNEL_CASES[size]:
    kq, kk, kvv = jax.random.split(jax.random.PRNGKey(0), 3)
    q = (jax.random.normal(kq, (b * w, kv, g, hd)) * hd ** -0.5).astype(jnp.bfloat16)
    k = jax.random.normal(kk, (b, slots, kv, hd)).astype(jnp.bfloat16)
    v = jax.random.normal(kvv, (b, slots, kv, hd)).astype(jnp.bfloat16)
    mask = jnp.broadcast_to(jnp.arange(slots) < live, (b, slots))
    nbytes = b * live * kv * 2 * hd * 2 + 2 * q.size * 2

    def xla(q, k, v, mask):  # what Attention.decode_self / decode_cross run with impl='xla'
      o = attend(q.reshape(b, w, 1, kv, g, hd), k, v, mask[:, None, None, None, None, :])
      return o.reshape(q.shape)

    impls = [('xla', None, xla)]
    for t in kernel_tunings(size, w * g):
      if cross:
        fn = lambda q, k, v, mask, t=t: decode_attention(q, k, v, mask=mask, beams=w, **t)
      else:
        fn = lambda q, k, v, mask, t=t: decode_attention(q, k, v, length=live, beams=w, **t)
      impls.append(('pallas', t, fn))
    for impl, tuning, fn in impls:
      def loop(q, k, v, mask, fn=fn):
        return jax.lax.fori_loop(0, loops, lambda _, x: x + (1e-3 * fn(x, k, v, mask)).astype(x.dtype), q)
      try:
        sec = median_time(loop, q, k, v, mask, repeats=5) / loops
      except Exception as e:  # a tuning Triton cannot compile (registers, shared memory): record it
        log(f'bench: kernel {name} {impl} {tuning}: {type(e).__name__}: {str(e)[:160]}')
        rows.append({'case': name, 'impl': impl, 'tuning': tuning, 'error': str(e)[:300]})
        save()
        continue
      row = {'case': name, 'impl': impl, 'tuning': tuning, 'kv_heads': kv, 'group': g, 'beams': w,
             'rows': b, 'slots': slots, 'live': live, 'us': sec * 1e6, 'bytes': nbytes,
             'GBps': nbytes / sec / 1e9, 'copy_fraction': nbytes / sec / costs.ceilings(hw)[0]}
      rows.append(row)
      save()
      log(f"bench: kernel {name:15s} {impl:6s} {str(tuning or ''):55s} {row['us']:8.1f} us "
          f"{row['GBps']:7.0f} GB/s ({100 * row['copy_fraction']:.0f}% of the bandwidth ceiling)")
  return rows
