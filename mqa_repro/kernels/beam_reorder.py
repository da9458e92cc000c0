"""In-place beam reorder of a decode cache's written slots, in Pallas (Triton backend on GPU).

After every beam step, hypothesis row r = b·W + w of a self-attention cache must hold its parent's
history: x[r, :n] <- x[b·W + parent[b, w], :n] for the n written slots. Shape letters:

  B  sentences    W  hypotheses per sentence (beams)    R = B·W cache rows
  L  cache slots  K  kv heads    H  head dim    C  slots per program (a power of 2 dividing L)

Why a kernel: XLA's reorder (kv_cache._gather_prefix) gathers each chunk into a temporary and writes
it back, so every copied byte crosses HBM four times; with a multi-head cache that is a large part of
a beam step (results/notes/beam_reorder.md). But parents never leave their sentence, so the
permutation is block-diagonal in groups of W rows, and one program can own a whole group: program
(b, k, j) loads the W parent rows of chunk j (slots [jC, jC + C)) of kv head k, then stores them in
their new order. Every load precedes every store, and no other program touches those bytes, so it is
safe in place (input_output_aliases): each byte is read once and written once. Programs whose chunk
starts at or past n do nothing.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from mqa_repro.kernels import platform

Array = jax.Array


def _pow2(n: int) -> bool:
  return n > 0 and n & (n - 1) == 0


def supported(x: Array, beams: int) -> bool:
  """Whether the compiled kernel takes leaf x [R, L, K, H]: Triton blocks need power-of-2 sizes."""
  return x.ndim == 4 and _pow2(beams) and _pow2(x.shape[-1]) and x.shape[0] % beams == 0


def _kernel(n_ref, src_ref, x_ref, o_ref, *, beams: int, chunk: int):
  """Program (b, k, j). Refs: n [1] written slots, src [W] parents (0..W-1) of sentence b,
  x / o [W, C, H]: the same bytes (aliased), rows b·W .. b·W + W - 1, slots of chunk j, head k."""
  @pl.when(pl.program_id(2) * chunk < n_ref[0])
  def _():
    rows = [x_ref[pl.ds(src_ref[w], 1), :, :] for w in range(beams)]   # all loads first: [1, C, H]
    for w, row in enumerate(rows):
      o_ref[pl.ds(w, 1), :, :] = row


@functools.partial(jax.jit, static_argnames=('beams', 'chunk', 'interpret', 'num_warps'))
def reorder_prefix(x: Array, parent: Array, written: Array, *, beams: int, chunk: int = 16,
                   interpret: bool | None = None, num_warps: int = 4) -> Array:
  """x [R, L, K, H] with rows b·W + w -> rows b·W + parent[b, w], on slots [0, min(written, L)) only.

  parent [B, W] int32 in [0, W) (the beam's parent within its sentence); written: slots holding
  positions so far (slot = position mod L, so a ring buffer past L is wholly written). Slots from
  min(written, L) on are left as they are. Donate x (or let XLA reuse it) to stay in place.
  """
  r, slots, kh, hd = x.shape
  b = r // beams
  if not supported(x, beams):
    raise ValueError(f'reorder_prefix: leaf {x.shape} with W = {beams} needs R divisible by W and '
                     f'power-of-2 W and H (Triton blocks); use kv_cache.reorder_state without parent')
  if parent.shape != (b, beams):
    raise ValueError(f'reorder_prefix: parent {parent.shape} should be [B, W] = [{b}, {beams}]')
  if interpret is None:
    interpret = platform.interpret_default('reorder_prefix')
  c = math.gcd(slots, chunk)
  c = 1 << (c.bit_length() - 1)                       # a power of 2 that still divides L
  n = jnp.minimum(jnp.asarray(written, jnp.int32), slots).reshape(1)
  return pl.pallas_call(
      functools.partial(_kernel, beams=beams, chunk=c),
      out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
      grid=(b, kh, slots // c),
      in_specs=[pl.BlockSpec((1,), lambda i, k, j: (0,)),                          # n [1]
                pl.BlockSpec((None, beams), lambda i, k, j: (i, 0)),              # parent [B, W]
                pl.BlockSpec((beams, c, None, hd), lambda i, k, j: (i, j, k, 0))],  # x [R, L, K, H]
      out_specs=pl.BlockSpec((beams, c, None, hd), lambda i, k, j: (i, j, k, 0)),
      input_output_aliases={2: 0},
      compiler_params=pltriton.CompilerParams(num_warps=num_warps, num_stages=1),
      interpret=interpret,
      name='beam_reorder_prefix',
  )(n, parent.astype(jnp.int32), x)
