"""The incremental-decoding cache: its layout, the ring buffer of local attention, the beam reorder,
and building it from the encoder output. Every other module goes through these functions.

Shape letters as in attention.py: B hypotheses (B·W when a beam of W is flattened into the batch),
L self-attention slots, S source (memory) length, T new positions, K kv heads, H query/key head dim,
V value head dim, D model dim.

Layout (an explicit pytree, passed in and returned: no hidden mutable collections)::

  {'state':    [per decoder layer {'key': [B, L, K, H], 'value': [B, L, K, V]}],
   'memory':   [per decoder layer {'key': [B_src, S, K, H], 'value': [B_src, S, K, V],
                                   'mask': [B_src, S]}]  or None (a decoder-only LM),
   'position': int32 []}

``position`` counts the positions written so far, the ONE counter: the next token goes to position
``position``, and every layer's state agrees with it. ``state`` is per HYPOTHESIS (every leaf has the
hypothesis axis first; a beam search reorders it); ``memory`` is per SOURCE SENTENCE: projected once
from the encoder output, shared by the sentence's W hypotheses (B = B_src · W) and never tiled or
reordered: the attention broadcasts it over the hypotheses.

Slots: position p lives in slot p for global attention (L = the longest decode), and in slot
p mod window for local attention (L = window): a ring buffer. After writing position p, slot s of a
ring holds the latest position <= p congruent to s, always inside the window. In both layouts only
slots [0, min(written, L)) have ever been written, which is what lets a beam reorder copy a prefix.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from mqa_repro.data.tokenizer import PAD_ID

Array = jax.Array
Cache = dict[str, Any]
REORDERS = ('prefix', 'pallas', 'full', 'none')


def make(state: list[dict[str, Array]], memory: list[dict[str, Array]] | None,
         position: Array | int = 0) -> Cache:
  return {'state': state, 'memory': memory, 'position': jnp.asarray(position, jnp.int32)}


def slots(length: int, window: int | None) -> int:
  """Self-attention slots for a decode of `length` positions."""
  return window if window is not None else length


def empty_self(batch: int, num_slots: int, kv_heads: int, qk_dim: int, v_dim: int, dtype) -> dict:
  return {'key': jnp.zeros((batch, num_slots, kv_heads, qk_dim), dtype),       # [B, L, K, H]
          'value': jnp.zeros((batch, num_slots, kv_heads, v_dim), dtype)}      # [B, L, K, V]


def cross(key: Array, value: Array, mask: Array) -> dict:
  """A layer's memory: K [B, S, K, H], V [B, S, K, V] projected from the encoder output, mask [B, S]."""
  return {'key': key, 'value': value, 'mask': mask.astype(bool)}


# --------------------------------------------------------------------------------------------------
# Writing T new positions of one layer, and what the attention then reads.


def write(layer: dict, k: Array, v: Array, position: Array, window: int | None
          ) -> tuple[dict, Array, Array, Array, Array]:
  """Write k [B, T, K, H], v [B, T, K, V] at positions position .. position + T - 1.

  Returns (the layer's new state, keys [B, S', K, H] and values the T queries attend over, mask
  [T, S'] (True = may attend), live: slots a single-token step reads, a prefix of the cache).
  """
  ck, cv = layer['key'], layer['value']
  t, n = k.shape[1], ck.shape[1]
  qpos = position + jnp.arange(t)
  k, v = k.astype(ck.dtype), v.astype(cv.dtype)
  if window is None:
    # Write first, then read the whole cache under a position mask: an in-place update, no copy.
    ck = lax.dynamic_update_slice(ck, k, (0, position, 0, 0))
    cv = lax.dynamic_update_slice(cv, v, (0, position, 0, 0))
    mask = jnp.arange(n)[None, :] <= qpos[:, None]                  # [T, L]
    return {'key': ck, 'value': cv}, ck, cv, mask, position + 1
  if t == 1:
    slot = position % n
    ck = lax.dynamic_update_slice(ck, k, (0, slot, 0, 0))
    cv = lax.dynamic_update_slice(cv, v, (0, slot, 0, 0))
    mask = (ring_positions(position, n) >= 0)[None, :]              # [1, window]
    return {'key': ck, 'value': cv}, ck, cv, mask, jnp.minimum(position + 1, n)
  # Several tokens into a ring (scoring a prompt): attend over the old ring and the new block, then
  # keep the last `window` new positions.
  old = ring_positions(position - 1, n)
  keys = jnp.concatenate([ck, k], axis=1)
  values = jnp.concatenate([cv, v], axis=1)
  kpos = jnp.concatenate([jnp.where(old >= 0, old, -n - 1), qpos])
  mask = (kpos[None, :] <= qpos[:, None]) & (kpos[None, :] > qpos[:, None] - n)
  keep = min(t, n)
  new_slots = (position + t - keep + jnp.arange(keep)) % n
  ck = ck.at[:, new_slots].set(k[:, t - keep:])
  cv = cv.at[:, new_slots].set(v[:, t - keep:])
  return {'key': ck, 'value': cv}, keys, values, mask, jnp.minimum(position + t, n)


def ring_positions(last: Array, num_slots: int) -> Array:
  """[L]: the position each slot of a ring holds once positions up to `last` are written
  (negative: never written)."""
  return last - jnp.mod(last - jnp.arange(num_slots), num_slots)


# --------------------------------------------------------------------------------------------------
# Beam search: hypotheses follow their parents.


def _gather_rows(x: Array, src: Array) -> Array:
  """x [B·W, ...] -> x[src]; 0-d leaves (shared by every hypothesis) stay."""
  return x if x.ndim == 0 else jnp.take(x, src, axis=0)


def _gather_prefix(leaves: list[Array], src: Array, written: Array, chunk: int) -> list[Array]:
  """Leaves [B·W, L, ...] (one L) -> rows src on slots [0, written) only, chunk by chunk, in place.

  A ``fori_loop`` over ceil(written / c) chunks of c = gcd(L, chunk) slots: each iteration reads one
  chunk, gathers its rows and writes it back where it was (an in-place dynamic_update_slice of the
  loop-carried buffer). Slots >= written were never written by anyone, so they need no copy; c
  divides L, so no chunk is clamped back over slots already gathered.
  """
  n = leaves[0].shape[1]
  c = math.gcd(n, chunk)

  def body(j, xs):
    start = j * c
    return tuple(lax.dynamic_update_slice_in_dim(
        x, jnp.take(lax.dynamic_slice_in_dim(x, start, c, axis=1), src, axis=0), start, axis=1)
        for x in xs)

  count = (jnp.minimum(written, n) + c - 1) // c
  return list(lax.fori_loop(0, count, body, tuple(leaves)))


def reorder_state(state: Any, src: Array, written: Array | None = None, chunk: int = 16,
                  parent: Array | None = None) -> Any:
  """Gather each per-hypothesis leaf of `state` at rows src [B·W].

  written=None gathers whole leaves: any layout. With `written`, leaves of rank >= 2 are taken to be
  caches of this module's layout (time axis 1, slot = position mod L), and only slots [0, written)
  are copied (``_gather_prefix``): the cost follows the decoded length, not L. parent [B, W] (with
  `written`; src = b·W + parent, a beam search's): the [B, L, K, H] leaves the Pallas kernel takes
  are permuted in place by it (kernels/beam_reorder.py: one read and one write per byte instead of
  the chunk loop's gather into a temporary and write back), the rest as above.
  """
  leaves, tree = jax.tree_util.tree_flatten(state)
  if written is None:
    return jax.tree_util.tree_unflatten(tree, [_gather_rows(x, src) for x in leaves])
  if parent is not None:
    from mqa_repro.kernels import beam_reorder
  by_slots: dict[int, list[int]] = {}
  for k, x in enumerate(leaves):
    if x.ndim < 2:
      leaves[k] = _gather_rows(x, src)
    elif parent is not None and beam_reorder.supported(x, parent.shape[1]):
      leaves[k] = beam_reorder.reorder_prefix(x, parent, written, beams=parent.shape[1], chunk=chunk)
    else:
      by_slots.setdefault(x.shape[1], []).append(k)
  for ks in by_slots.values():
    for k, x in zip(ks, _gather_prefix([leaves[k] for k in ks], src, written, chunk)):
      leaves[k] = x
  return jax.tree_util.tree_unflatten(tree, leaves)


def reorder(cache: Cache, src: Array, parent: Array, scheme: str) -> Cache:
  """The cache with its per-hypothesis state following the beams' parents (memory is per sentence
  and stays). Schemes: 'full' gathers whole leaves and needs nothing but the layout's hypothesis
  axis; 'prefix' copies only the written slots; 'pallas' does that in place with the kernel; 'none'
  skips the gather (WRONG beams: for measuring a step without it)."""
  if scheme == 'none':
    return cache
  written = cache['position'] if scheme != 'full' else None
  return dict(cache, state=reorder_state(cache['state'], src, written,
                                         parent=parent if scheme == 'pallas' else None))


# --------------------------------------------------------------------------------------------------
# Building a cache around a model.


def memory(model, params: Any, inputs: Array) -> list[dict] | None:
  """Encoder output -> every decoder layer's cross-attention K/V, once per source sentence
  (inputs [B_src, S], PAD masked). `model` is a transformer.Transformer (its methods are taken from
  the instance: this module sits below the model and does not import it)."""
  module = type(model)
  encoded = model.apply({'params': params}, inputs, method=module.encode)      # [B_src, S, D]
  return model.apply({'params': params}, encoded, inputs != PAD_ID, method=module.init_memory)


def for_sources(model, params: Any, inputs: Array | None, hyps: int, length: int) -> Cache:
  """The cache of `hyps` hypotheses decoding `length` positions: the encoder run once over inputs
  [B_src, S] and its K/V projected once (None for a decoder-only LM), empty self-attention state."""
  state = model.apply({'params': params}, hyps, length, method=type(model).init_state)
  return make(state, None if inputs is None else memory(model, params, inputs))


def empty_state_like(model, params: Any, hyps: int, length: int) -> list[dict]:
  """Zero self-attention state built inside the traced graph (its zero-fill is part of decoding)."""
  shapes = jax.eval_shape(lambda p: model.apply({'params': p}, hyps, length,
                                                method=type(model).init_state), params)
  return jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
