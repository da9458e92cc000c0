"""One attention layer for multi-head, multi-query, grouped-query and local attention.

The variant is data, not a subclass: ``num_heads`` query heads share ``num_kv_heads`` key/value heads
(1 = multi-query, ``num_heads`` = multi-head, in between = grouped-query), and ``window`` restricts a
causal self-attention to the last ``window`` positions (local attention).

Shape letters, used in the docstrings and in every einsum string below:

  B  batch (sentences; hypotheses where a beam is flattened into the batch)
  W  beams that share one encoder memory (decode-time cross-attention; 1 everywhere else)
  T  query length              S  key / memory length
  N  query heads (h)           K  key/value heads (g)     G  query heads per kv head (h / g)
  H  query/key head dim (d_k)  V  value head dim (d_v)    D  model dim (d)
  (and, elsewhere in the project: F FFN width, L cache slots, Y vocabulary)

Grouped queries are contracted against their kv head directly ('BWTKGH,BSKH->BWKGTS'): K/V are never
repeated up to N heads, because that would re-inflate exactly the memory traffic multi-query attention
removes. Query head n belongs to kv head n // G, so a multi-head checkpoint converts to grouped-query
by mean-pooling each group's K/V heads (see ``transformer.convert_kv_heads``).

Decoding steps read and write the cache of kv_cache.py (its layout and ring buffer live there) and
compute with the code decode_impl.py selects (XLA einsums or the Pallas kernels).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mqa_repro.nn import decode_impl, kv_cache

Array = jax.Array
# The parallel path (training, scoring): XLA's einsums (the reference) or the fused Pallas kernel
# (kernels/flash_attention.py: the [T, S] probabilities never reach memory; its own dropout bits).
TRAIN_IMPLS = ('xla', 'pallas')
_NEG = -1e30  # masked logit: exp underflows to exactly 0 in float32, and a fully masked row stays finite


def _dense_init(fan_in: int):
  return nn.initializers.normal(stddev=fan_in ** -0.5)


def attend(q: Array, k: Array, v: Array, mask: Array | None, *, dropout: nn.Module | None = None,
           deterministic: bool = True) -> Array:
  """Softmax attention of grouped queries against their kv heads.

  q [B, W, T, K, G, H] (already scaled by H^-0.5), k [B, S, K, H], v [B, S, K, V],
  mask broadcastable to [B, W, K, G, T, S] (True = may attend). Returns [B, W, T, K, G, V].
  """
  logits = jnp.einsum('BWTKGH,BSKH->BWKGTS', q, k, preferred_element_type=jnp.float32)
  if mask is not None:
    logits = jnp.where(mask, logits, _NEG)
  probs = jax.nn.softmax(logits, axis=-1)
  if dropout is not None and not deterministic:
    probs = dropout(probs, deterministic=False)
  return jnp.einsum('BWKGTS,BSKV->BWTKGV', probs.astype(v.dtype), v)


def local_causal_mask(t: int, s: int, window: int | None, causal: bool) -> Array | None:
  """[T, S] mask over row indices: causal (j <= i) and, for local attention, i - j < window."""
  if not causal:
    return None
  i = jnp.arange(t)[:, None]
  j = jnp.arange(s)[None, :]
  mask = j <= i
  if window is not None:
    mask &= j > i - window
  return mask


class Attention(nn.Module):
  """Multi-head / multi-query / grouped-query / local attention with an incremental-decode cache."""
  d_model: int
  num_heads: int
  num_kv_heads: int
  qk_dim: int
  v_dim: int
  causal: bool = False
  window: int | None = None
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  impl: str = 'xla'         # decode steps' attention code (decode_impl.IMPLS)
  train_impl: str = 'xla'   # the parallel path's (TRAIN_IMPLS)

  def setup(self):
    n, k, d = self.num_heads, self.num_kv_heads, self.d_model
    if n % k:
      raise ValueError(f"num_heads ({n}) must be divisible by num_kv_heads ({k})")
    decode_impl.check(self.impl)
    if self.train_impl not in TRAIN_IMPLS:
      raise ValueError(f'train_impl must be one of {TRAIN_IMPLS}, got {self.train_impl!r}')
    part = nn.with_logical_partitioning
    self.query = self.param('query', part(_dense_init(d), ('embed', 'heads', 'qk_dim')),
                            (d, n, self.qk_dim), self.param_dtype)       # [D, N, H]
    self.key = self.param('key', part(_dense_init(d), ('embed', 'kv_heads', 'qk_dim')),
                          (d, k, self.qk_dim), self.param_dtype)         # [D, K, H]
    self.value = self.param('value', part(_dense_init(d), ('embed', 'kv_heads', 'v_dim')),
                            (d, k, self.v_dim), self.param_dtype)        # [D, K, V]
    self.out = self.param('out', part(_dense_init(n * self.v_dim), ('heads', 'v_dim', 'embed')),
                          (n, self.v_dim, d), self.param_dtype)          # [N, V, D]
    self.dropout = nn.Dropout(self.dropout_rate)

  # --- projections -------------------------------------------------------------------------------

  def _queries(self, x: Array) -> Array:
    """x [B, T, D] -> [B, T, K, G, H], scaled by H^-0.5 (folded in here, not into the logits)."""
    q = jnp.einsum('BTD,DNH->BTNH', x.astype(self.dtype), self.query.astype(self.dtype))
    q = nn.with_logical_constraint(q, ('batch', 'length', 'heads', 'qk_dim'))
    q = q * jnp.asarray(self.qk_dim ** -0.5, self.dtype)
    b, t = q.shape[:2]
    return q.reshape(b, t, self.num_kv_heads, self.num_heads // self.num_kv_heads, self.qk_dim)

  def _keys_values(self, x: Array) -> tuple[Array, Array]:
    """x [B, S, D] -> k [B, S, K, H], v [B, S, K, V]."""
    x = x.astype(self.dtype)
    k = jnp.einsum('BSD,DKH->BSKH', x, self.key.astype(self.dtype))
    v = jnp.einsum('BSD,DKV->BSKV', x, self.value.astype(self.dtype))
    k = nn.with_logical_constraint(k, ('batch', 'length', 'kv_heads', 'qk_dim'))
    v = nn.with_logical_constraint(v, ('batch', 'length', 'kv_heads', 'v_dim'))
    return k, v

  def _output(self, o: Array) -> Array:
    """o [B, W, T, K, G, V] -> [B·W, T, D]."""
    b, w, t = o.shape[:3]
    o = o.reshape(b * w, t, self.num_heads, self.v_dim)
    return jnp.einsum('BTNV,NVD->BTD', o, self.out.astype(self.dtype))

  # --- parallel path (training, evaluation, full-sequence scoring) -------------------------------

  def __call__(self, x: Array, memory: Array | None = None, mask: Array | None = None, *,
               deterministic: bool = True) -> Array:
    """Self-attention over x (memory None) or attention from x to memory.

    x [B, T, D], memory [B, S, D], mask [B, T, S] (segments / padding; True = may attend). Causal and
    window masks are added here for self-attention, on row indices: packed examples are contiguous,
    so index differences equal position differences within an example.
    """
    q = self._queries(x)[:, None]                               # [B, 1, T, K, G, H]
    k, v = self._keys_values(x if memory is None else memory)
    t, s = x.shape[1], k.shape[1]
    full = None if mask is None else mask[:, None, None, None, :, :]   # [B, 1, 1, 1, T, S]
    if memory is None:
      lc = local_causal_mask(t, s, self.window, self.causal)
      if lc is not None:
        full = lc if full is None else full & lc
    if self.train_impl == 'pallas':
      o = self._fused(q, k, v, full, deterministic)
    else:
      o = attend(q, k, v, full, dropout=self.dropout, deterministic=deterministic)
    return self._output(o)

  def _fused(self, q: Array, k: Array, v: Array, mask: Array | None, deterministic: bool) -> Array:
    """attend() through kernels/flash_attention.py: q [B, 1, T, K, G, H], mask broadcastable to
    [B, 1, 1, 1, T, S] -> [B, 1, T, K, G, V]."""
    from mqa_repro.kernels.flash_attention import flash_attention
    b, _, t, kh, g, hd = q.shape
    s = k.shape[1]
    mask3 = None if mask is None else jnp.broadcast_to(mask, (b, 1, 1, 1, t, s))[:, 0, 0, 0]
    rate = 0.0 if deterministic else self.dropout_rate
    seed = jax.random.bits(self.make_rng('dropout'), dtype=jnp.uint32) if rate else 0
    o = flash_attention(q.reshape(b, t, kh * g, hd), k, v, mask3, rate=rate, seed=seed)
    return o.reshape(b, 1, t, kh, g, -1)

  # --- incremental path (decoding) ---------------------------------------------------------------

  def init_self_cache(self, batch: int, length: int) -> dict[str, Array]:
    """Empty self-attention state for a decode of `length` positions (kv_cache.py)."""
    return kv_cache.empty_self(batch, kv_cache.slots(length, self.window), self.num_kv_heads,
                               self.qk_dim, self.v_dim, self.dtype)

  def init_cross_cache(self, memory: Array, memory_mask: Array) -> dict[str, Array]:
    """Project the encoder output ONCE per sentence: memory [B, S, D], memory_mask [B, S]."""
    return kv_cache.cross(*self._keys_values(memory), memory_mask)

  def decode_self(self, x: Array, cache: dict[str, Array], position: Array
                  ) -> tuple[Array, dict[str, Array]]:
    """Causal self-attention for T new tokens x [B, T, D] at positions position .. position+T-1."""
    q = self._queries(x)[:, None]                               # [B, 1, T, K, G, H]
    k, v = self._keys_values(x)                                 # [B, T, K, H]
    cache, keys, values, mask, live = kv_cache.write(cache, k, v, position, self.window)
    if decode_impl.kernel_for_self(self.impl, x.shape[1]):
      o = decode_impl.self_step(q, keys, values, live)
    else:
      o = attend(q, keys, values, mask)
    return self._output(o), cache

  def decode_cross(self, x: Array, cache: dict[str, Array]) -> Array:
    """Attention from x [B·W, T, D] to the cached encoder memory of B sentences.

    With a beam, the W hypotheses of a sentence share its memory: queries are viewed as [B, W, ...]
    and broadcast against the one copy of K/V instead of tiling it W times.
    """
    k, v, m = cache['key'], cache['value'], cache['mask']         # [B, S, K, H], [B, S, K, V], [B, S]
    q = self._queries(x)                                           # [B·W, T, K, G, H]
    if decode_impl.kernel_for_cross(self.impl, q.shape[1]):
      return self._output(decode_impl.cross_step(q, k, v, m))
    b = k.shape[0]
    q = q.reshape(b, q.shape[0] // b, *q.shape[1:])                # [B, W, T, K, G, H]
    o = attend(q, k, v, m[:, None, None, None, None, :])
    return self._output(o)
