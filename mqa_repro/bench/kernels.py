"""Decode attention alone: XLA's einsums (the reference path) against tunings of the Pallas kernel,
in µs per call and the fraction of the bandwidth ceiling they reach for the bytes a call must move.

One layer's multi-query cache at the paper's shapes (33 MB of live K/V) fits a GPU's L2 (50 MB on an
H100, 60 MB on an H200), and a decoder reads a different layer's cache at every call. So the timed
loop rotates over independent copies of K/V, at least COLD_BYTES of them, and each call reads a
buffer that the previous calls have pushed out of L2: the time is device memory's, not L2's."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from mqa_repro import costs
from mqa_repro.bench.timing import Budget, median_time

COLD_BYTES = 256 << 20   # K/V the timed loop rotates over: several times any current GPU's L2

# A case: (name, kv heads K, query heads per kv head G, beams W, memory rows B, slots S, live slots,
# cross): self-attention reads `live` of S slots (a step halfway through T = 128, or through 1024 in
# the long-cache cases of the LM at small batch), cross-attention all S under a source mask; beam
# cases share one memory row among W hypotheses.
KERNEL_CASES = {
    'paper': [('mha self b1 S1024', 8, 1, 1, 1, 1024, 512, False),
              ('mqa self b1 S1024', 1, 8, 1, 1, 1024, 512, False),
              ('mha self b8 S1024', 8, 1, 1, 8, 1024, 512, False),
              ('mha self', 8, 1, 1, 1024, 128, 64, False), ('mha cross', 8, 1, 1, 1024, 128, 128, True),
              ('mqa self', 1, 8, 1, 1024, 128, 64, False), ('mqa cross', 1, 8, 1, 1024, 128, 128, True),
              ('mha beam cross', 8, 1, 4, 256, 128, 128, True),
              ('mqa beam cross', 1, 8, 4, 256, 128, 128, True)],
    'tiny': [('mha self', 2, 1, 1, 4, 16, 8, False), ('mqa cross', 1, 2, 2, 2, 16, 16, True)]}


def kernel_tunings(size: str, m: int, programs: int | None = None) -> list[dict[str, Any]]:
  """Pallas tunings to time for M = W·G query rows per kv head ({} = the kernel's defaults); with
  fewer `programs` (memory rows × kv heads) than the kernel's SPLIT_TARGET, the splits over S."""
  if size != 'paper':
    return [{}, dict(tensor_cores=True, block_k=8)]
  from mqa_repro.kernels.decode_attention import SPLIT_TARGET
  if programs is not None and programs < SPLIT_TARGET:
    return [{}] + [dict(splits=p) for p in (1, 2, 4, 8, 16)]
  dots = [dict(tensor_cores=True, block_k=bk, num_warps=nw) for bk in (32, 64) for nw in (2, 4, 8)]
  # From M = 8 rows the CUDA-core path would hold [M, bk, H] in registers: far slower, so not timed
  # (results/notes/kernels.md).
  if m >= 8:
    return [{}] + dots + [dict(tensor_cores=True, block_k=64, num_warps=4, num_stages=3)]
  return [{}] + [dict(tensor_cores=False, block_k=bk, num_warps=nw)
                 for bk in (16, 32, 64) for nw in (1, 2, 4)] + dots[:4]


def timing_key(row: dict[str, Any]) -> tuple:
  """What identifies a kernel timing in a file (resume and merge skip one already there)."""
  return row['case'], row['impl'], json.dumps(row.get('tuning'), sort_keys=True)


def kv_copies(cold_bytes: int, rows: int, slots: int, kv_heads: int, head_dim: int) -> int:
  """How many copies of a bfloat16 K/V cache [rows, slots, kv_heads, head_dim] (K and V) hold at
  least `cold_bytes` together (at least one)."""
  return max(1, -(-cold_bytes // (2 * rows * slots * kv_heads * head_dim * 2)))


def kernel_bench(size: str, hw: dict[str, Any], log, loops: int = 20, rows: list | None = None,
                 save: Callable[[], None] = lambda: None,
                 cold_bytes: int | None = None, budget: Budget | None = None) -> list[dict[str, Any]]:
  """µs and GB/s of one decode-attention call per case and implementation. At least `loops` calls
  run in one compiled program (each query depends on the previous output), so launch gaps count but
  host dispatch does not; call i reads copy i mod C of K/V, with C copies holding >= `cold_bytes`
  (default: COLD_BYTES at the paper's size; none for 'tiny', a pipeline check on the CPU).
  Bytes are what the call must read and write: the live K/V, q and the output. `rows` may hold the
  timings of an earlier run (bench --resume): those (case, implementation, tuning) are not timed
  again. `budget`: no timing starts that would end past it."""
  from mqa_repro.nn.attention import attend
  from mqa_repro.kernels import decode_attention
  hd = 128 if size == 'paper' else 16
  if cold_bytes is None:
    cold_bytes = COLD_BYTES if size == 'paper' else 0
  rows = [] if rows is None else rows
  budget = budget or Budget(None)
  done = {timing_key(r) for r in rows}
  for name, kv, g, w, b, slots, live, cross in KERNEL_CASES[size]:
    kq, kk, kvv = jax.random.split(jax.random.PRNGKey(0), 3)
    q = (jax.random.normal(kq, (b * w, kv, g, hd)) * hd ** -0.5).astype(jnp.bfloat16)
    copies = kv_copies(cold_bytes, b, slots, kv, hd)
    ks = [jax.random.normal(jax.random.fold_in(kk, c), (b, slots, kv, hd)).astype(jnp.bfloat16)
          for c in range(copies)]
    vs = [jax.random.normal(jax.random.fold_in(kvv, c), (b, slots, kv, hd)).astype(jnp.bfloat16)
          for c in range(copies)]
    calls = max(loops, copies)
    mask = jnp.broadcast_to(jnp.arange(slots) < live, (b, slots))
    nbytes = b * live * kv * 2 * hd * 2 + 2 * q.size * 2

    def xla(q, k, v, mask):  # what Attention.decode_self / decode_cross run with impl='xla'
      o = attend(q.reshape(b, w, 1, kv, g, hd), k, v, mask[:, None, None, None, None, :])
      return o.reshape(q.shape)

    impls = [('xla', None, xla)]
    for t in kernel_tunings(size, w * g, b * kv):
      if cross:
        fn = lambda q, k, v, mask, t=t: decode_attention(q, k, v, mask=mask, beams=w, **t)
      else:
        fn = lambda q, k, v, mask, t=t: decode_attention(q, k, v, length=live, beams=w, **t)
      impls.append(('pallas', t, fn))
    for impl, tuning, fn in impls:
      if timing_key({'case': name, 'impl': impl, 'tuning': tuning}) in done:
        continue
      if not budget.allows('kernel'):
        log(f'bench: kernels: {budget.stopped}')
        return rows
      start = time.perf_counter()
      def loop(q, ks, vs, mask, fn=fn):   # unrolled: each copy is its own buffer, never a slice
        for i in range(calls):
          q = q + (1e-3 * fn(q, ks[i % copies], vs[i % copies], mask)).astype(q.dtype)
        return q
      try:
        sec = median_time(loop, q, ks, vs, mask, repeats=5) / calls
        budget.record('kernel', start)
      except Exception as e:  # a tuning Triton cannot compile (registers, shared memory): record it
        log(f'bench: kernel {name} {impl} {tuning}: {type(e).__name__}: {str(e)[:160]}')
        rows.append({'case': name, 'impl': impl, 'tuning': tuning, 'error': str(e)[:300]})
        save()
        continue
      row = {'case': name, 'impl': impl, 'tuning': tuning, 'kv_heads': kv, 'group': g, 'beams': w,
             'rows': b, 'slots': slots, 'live': live, 'kv_copies': copies, 'us': sec * 1e6,
             'bytes': nbytes,
             'GBps': nbytes / sec / 1e9, 'copy_fraction': nbytes / sec / costs.ceilings(hw)[0]}
      rows.append(row)
      save()
      log(f"bench: kernel {name:15s} {impl:6s} {str(tuning or ''):55s} {row['us']:8.1f} us "
          f"{row['GBps']:7.0f} GB/s ({100 * row['copy_fraction']:.0f}% of the bandwidth ceiling)")
  return rows
