"""Which code computes a decode step's attention, and the beam reorder that goes with it: the one
place that reads ``config.model.attention_impl``.

  'xla'         einsums (``attention.attend``), the reference; the beam reorder is XLA's gather
                of the written slots ('prefix').
  'pallas'      the Pallas kernel for single-token self-attention steps: it reads only the live
                prefix of the cache instead of masking all of it; the in-place Pallas beam reorder.
  'pallas_all'  the kernel for cross-attention steps too (it must read all S source positions, where
                XLA's einsums already run near copy bandwidth: ``mqa-repro bench --kernels``).
Training, scoring and multi-token prefill always take the einsums.

Shape letters as in attention.py.
"""

from __future__ import annotations

from typing import Any

IMPLS = ('xla', 'pallas', 'pallas_all')


def check(impl: str) -> None:
  if impl not in IMPLS:
    raise ValueError(f'attention_impl must be one of {IMPLS}, got {impl!r}')


def beam_reorder(impl: str) -> str:
  """kv_cache.reorder's scheme for a decode-attention path."""
  return 'prefix' if impl == 'xla' else 'pallas'


def kernel_for_self(impl: str, tokens: int) -> bool:
  return impl != 'xla' and tokens == 1


def kernel_for_cross(impl: str, tokens: int) -> bool:
  return impl == 'pallas_all' and tokens == 1


def self_step(q: Any, keys: Any, values: Any, live: Any) -> Any:
  """One token per hypothesis, q [B, 1, 1, K, G, H], against the first `live` slots of
  keys [B, L, K, H], values [B, L, K, V] -> [B, 1, 1, K, G, V]."""
  from mqa_repro.kernels import decode_attention
  return decode_attention(q[:, 0, 0], keys, values, length=live)[:, None, None]


def cross_step(q: Any, keys: Any, values: Any, mask: Any) -> Any:
  """One token per hypothesis, q [B·W, 1, K, G, H], against the memory of B sentences (keys
  [B, S, K, H], values [B, S, K, V], mask [B, S]; never tiled) -> [B, W, 1, K, G, V]."""
  from mqa_repro.kernels import decode_attention
  b = keys.shape[0]
  w = q.shape[0] // b
  o = decode_attention(q[:, 0], keys, values, mask=mask, beams=w)       # [B·W, K, G, V]
  return o.reshape(b, w, 1, *o.shape[1:])
