"""Fused training attention in Pallas (Triton backend on GPU), with attention dropout inside the kernel.

The parallel path of ``attention.attend`` materialises [B, N, T, S] logits and probabilities in float32
and makes several passes over them (mask, softmax, dropout, casts) for every attention layer, forward
and backward. Here one program owns a block of query rows of one head and streams its kv head's K/V
blocks once with an online softmax, so the [T, S] matrices never reach memory. Shape letters as in
attention.py:

  B batch   T query length   S key length   N query heads   K kv heads   G = N / K   H, V head dims
  (bq query rows, bk key slots per block)

Forward, per (b, n, block i of bq rows), for each block j of bk slots:
    s = q_i [bq, H] · k_j [bk, H]^T   (masked: -1e30)                         'TH,SH->TS'
    m' = max(m, max_S s);  a = exp(m - m');  p = exp(s - m')
    l  = a·l + sum_S p;    acc = a·acc + (p ⊙ z) [bq, bk] · v_j [bk, V]         'TS,SV->TV'
  o = acc / l,  with z = keep / (1 - rate) the dropout of the probabilities (after the softmax, as
  attend() applies it: the normaliser l counts every slot).
Backward (m and l saved; D = rowsum(dO ⊙ O)), recomputing p and z block by block:
    dV_j += (p ⊙ z)^T dO_i;  dP = (dO_i V_j^T) ⊙ z;  dS = p ⊙ (dP - D_i)
    dQ_i += dS K_j;  dK_j += dS^T Q_i
  dK and dV are written per query head and summed over the G heads of a kv head outside the kernel.

Dropout bits: keep(b, n, t, s) is a hash (murmur3's 32-bit finaliser) of the element's flat index and
a per-call seed, kept when its top 24 bits are >= rate · 2^24. The forward and backward kernels
recompute the same bits; ``dropout_keep`` is the same function for the reference in the tests. These
are not flax's dropout bits: a model trained on this path sees another (equally random) dropout draw.

Masks follow attend(): a masked slot gets the logit -1e30, so a fully masked row averages V over all
S slots (its m and l make that exact in the backward pass too).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from mqa_repro.kernels import platform

Array = jax.Array
_NEG = -1e30


def _fmix32(h: Array) -> Array:
  """murmur3's 32-bit finaliser on uint32: every input bit flips about half the output bits."""
  h = h ^ lax.shift_right_logical(h, jnp.uint32(16))
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ lax.shift_right_logical(h, jnp.uint32(13))
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ lax.shift_right_logical(h, jnp.uint32(16))


def _keep(seed: Array, head: Array, rows: Array, cols: Array, t: int, s: int, rate: float) -> Array:
  """Dropout keep bits [len(rows), len(cols)] of (flat batch·head index `head`, rows, cols)."""
  flat = ((head.astype(jnp.uint32) * jnp.uint32(t) + rows.astype(jnp.uint32)[:, None])
          * jnp.uint32(s) + cols.astype(jnp.uint32)[None, :])
  bits = _fmix32(flat ^ _fmix32(seed.astype(jnp.uint32) + jnp.uint32(0x9E3779B9)))
  return lax.shift_right_logical(bits, jnp.uint32(8)).astype(jnp.int32) >= int(rate * (1 << 24))


def _dropped(x: Array, seed: Array, head: Array, rows: Array, cols: Array, t: int, s: int,
             rate: float) -> Array:
  """x [rows, cols] with the dropout of those elements applied: kept ones scaled by 1 / (1 - rate)."""
  return jnp.where(_keep(seed, head, rows, cols, t, s, rate), x * (1.0 / (1.0 - rate)), 0.0)


def dropout_keep(seed: Array, b: int, n: int, t: int, s: int, rate: float) -> Array:
  """The kernels' keep bits for every element, [B, N, T, S] (for references and tests)."""
  heads = jnp.arange(b * n, dtype=jnp.uint32).reshape(b, n)
  rows, cols = jnp.arange(t), jnp.arange(s)
  return jax.vmap(jax.vmap(lambda h: _keep(seed, h, rows, cols, t, s, rate)))(heads)


def _pow2(n: int) -> bool:
  return n > 0 and n & (n - 1) == 0


def _block(n: int, want: int) -> int:
  b = min(want, n)
  while n % b:
    b //= 2
  return b


# --- forward -------------------------------------------------------------------------------------

def _fwd_kernel(seed_ref, q_ref, k_ref, v_ref, mask_ref, o_ref, m_ref, l_ref, *, bk: int, t: int,
                s: int, heads: int, rate: float):
  b, n, i = pl.program_id(0), pl.program_id(1), pl.program_id(2)
  q = q_ref[...]                                                   # [bq, H]
  bq, vd = q.shape[0], v_ref.shape[-1]
  rows = i * bq + lax.broadcasted_iota(jnp.int32, (bq,), 0)

  def body(j, carry):
    m, l, acc = carry
    kb = k_ref[pl.ds(j * bk, bk), :]                               # [bk, H]
    vb = v_ref[pl.ds(j * bk, bk), :]                               # [bk, V]
    sc = lax.dot_general(q, kb, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
    sc = jnp.where(mask_ref[:, pl.ds(j * bk, bk)] != 0, sc, _NEG)  # 'TH,SH->TS'
    m_new = jnp.maximum(m, jnp.max(sc, axis=-1))
    alpha = jnp.exp(m - m_new)
    p = jnp.exp(sc - m_new[:, None])
    l_new = alpha * l + jnp.sum(p, axis=-1)
    if rate:
      cols = j * bk + lax.broadcasted_iota(jnp.int32, (bk,), 0)
      p = _dropped(p, seed_ref[0], b * heads + n, rows, cols, t, s, rate)
    pv = lax.dot_general(p.astype(vb.dtype), vb, (((1,), (0,)), ((), ())),
                         preferred_element_type=jnp.float32)       # 'TS,SV->TV'
    return m_new, l_new, alpha[:, None] * acc + pv

  init = (jnp.full((bq,), -jnp.inf, jnp.float32), jnp.zeros((bq,), jnp.float32),
          jnp.zeros((bq, vd), jnp.float32))
  m, l, acc = lax.fori_loop(0, s // bk, body, init)
  o_ref[...] = (acc / l[:, None]).astype(o_ref.dtype)
  m_ref[...], l_ref[...] = m, l


# --- backward ------------------------------------------------------------------------------------

def _probs(q, kb, mask, m, l):
  """Recomputed softmax probabilities of one [bq, bk] block, and which slots the mask opens."""
  sc = lax.dot_general(q, kb, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
  live = mask != 0
  return jnp.exp(jnp.where(live, sc, _NEG) - m[:, None]) / l[:, None], live


def _dlogits(p, dp, d, live):
  """dS = p ⊙ (dP - D); a masked slot's logit is the constant -1e30, so no gradient flows through it
  (in a fully masked row its p is 1/S, not 0)."""
  return jnp.where(live, p * (dp - d[:, None]), 0.0)


def _dq_kernel(seed_ref, q_ref, k_ref, v_ref, mask_ref, do_ref, m_ref, l_ref, d_ref, dq_ref, *,
               bk: int, t: int, s: int, heads: int, rate: float):
  b, n, i = pl.program_id(0), pl.program_id(1), pl.program_id(2)
  q, do = q_ref[...], do_ref[...]                                  # [bq, H], [bq, V]
  m, l, d = m_ref[...], l_ref[...], d_ref[...]                     # [bq] each
  bq = q.shape[0]
  rows = i * bq + lax.broadcasted_iota(jnp.int32, (bq,), 0)

  def body(j, dq):
    kb = k_ref[pl.ds(j * bk, bk), :]
    vb = v_ref[pl.ds(j * bk, bk), :]
    p, live = _probs(q, kb, mask_ref[:, pl.ds(j * bk, bk)], m, l)  # [bq, bk]
    dp = lax.dot_general(do, vb, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
    if rate:                                                       # 'TV,SV->TS'
      cols = j * bk + lax.broadcasted_iota(jnp.int32, (bk,), 0)
      dp = _dropped(dp, seed_ref[0], b * heads + n, rows, cols, t, s, rate)
    ds = _dlogits(p, dp, d, live)
    return dq + lax.dot_general(ds.astype(kb.dtype), kb, (((1,), (0,)), ((), ())),
                                preferred_element_type=jnp.float32)  # 'TS,SH->TH'

  dq = lax.fori_loop(0, s // bk, body, jnp.zeros(q.shape, jnp.float32))
  dq_ref[...] = dq.astype(dq_ref.dtype)


def _dkv_kernel(seed_ref, q_ref, k_ref, v_ref, mask_ref, do_ref, m_ref, l_ref, d_ref, dk_ref, dv_ref,
                *, bq: int, t: int, s: int, heads: int, rate: float):
  b, n, j = pl.program_id(0), pl.program_id(1), pl.program_id(2)
  kb, vb = k_ref[...], v_ref[...]                                  # [bk, H], [bk, V]
  bk = kb.shape[0]
  cols = j * bk + lax.broadcasted_iota(jnp.int32, (bk,), 0)
  scale = 1.0 / (1.0 - rate) if rate else 1.0   # p and dP share one keep mask: computed once

  def body(i, carry):
    dk, dv = carry
    rs = pl.ds(i * bq, bq)
    q, do = q_ref[rs, :], do_ref[rs, :]
    p, live = _probs(q, kb, mask_ref[rs, :], m_ref[rs], l_ref[rs])  # [bq, bk]
    dp = lax.dot_general(do, vb, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)
    pz = p
    if rate:
      rows = i * bq + lax.broadcasted_iota(jnp.int32, (bq,), 0)
      keep = _keep(seed_ref[0], b * heads + n, rows, cols, t, s, rate)
      pz = jnp.where(keep, p * scale, 0.0)
      dp = jnp.where(keep, dp * scale, 0.0)
    ds = _dlogits(p, dp, d_ref[rs], live)
    dv = dv + lax.dot_general(pz.astype(do.dtype), do, (((0,), (0,)), ((), ())),
                              preferred_element_type=jnp.float32)  # 'TS,TV->SV'
    dk = dk + lax.dot_general(ds.astype(q.dtype), q, (((0,), (0,)), ((), ())),
                              preferred_element_type=jnp.float32)  # 'TS,TH->SH'
    return dk, dv

  dk, dv = lax.fori_loop(0, t // bq, body, (jnp.zeros(kb.shape, jnp.float32),
                                            jnp.zeros(vb.shape, jnp.float32)))
  dk_ref[...], dv_ref[...] = dk.astype(dk_ref.dtype), dv.astype(dv_ref.dtype)


# --- the differentiable call ---------------------------------------------------------------------

def _specs(t, s, g, hd, vd, bq, bk, by_keys: bool):
  """BlockSpecs of seed, q, k, v, mask for a grid (B, N, blocks): of query rows, or (by_keys) of
  key slots. q [B, T, N, H], k [B, S, K, H], v [B, S, K, V], mask [B, T, S]."""
  if by_keys:
    return [pl.BlockSpec((1,), lambda i, h, j: (0,)),
            pl.BlockSpec((None, t, None, hd), lambda i, h, j: (i, 0, h, 0)),
            pl.BlockSpec((None, bk, None, hd), lambda i, h, j: (i, j, h // g, 0)),
            pl.BlockSpec((None, bk, None, vd), lambda i, h, j: (i, j, h // g, 0)),
            pl.BlockSpec((None, t, bk), lambda i, h, j: (i, 0, j))]
  return [pl.BlockSpec((1,), lambda i, h, j: (0,)),
          pl.BlockSpec((None, bq, None, hd), lambda i, h, j: (i, j, h, 0)),
          pl.BlockSpec((None, s, None, hd), lambda i, h, j: (i, 0, h // g, 0)),
          pl.BlockSpec((None, s, None, vd), lambda i, h, j: (i, 0, h // g, 0)),
          pl.BlockSpec((None, bq, s), lambda i, h, j: (i, j, 0))]


def _call(kernel, grid, in_specs, out_specs, out_shape, interpret, name, num_warps, num_stages):
  return pl.pallas_call(kernel, grid=grid, in_specs=in_specs, out_specs=out_specs,
                        out_shape=out_shape, interpret=interpret, name=name,
                        compiler_params=pltriton.CompilerParams(num_warps=num_warps,
                                                                num_stages=num_stages))


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8, 9, 10))
def _flash(q, k, v, mask, seed, rate, bq, bk, interpret, num_warps, num_stages):
  return _forward(q, k, v, mask, seed, rate, bq, bk, interpret, num_warps, num_stages)[0]


def _forward(q, k, v, mask, seed, rate, bq, bk, interpret, num_warps, num_stages):
  b, t, n, hd = q.shape
  s, kh, vd = k.shape[1], k.shape[2], v.shape[-1]
  kernel = functools.partial(_fwd_kernel, bk=bk, t=t, s=s, heads=n, rate=rate)
  o, m, l = _call(
      kernel, (b, n, t // bq), _specs(t, s, n // kh, hd, vd, bq, bk, False),
      (pl.BlockSpec((None, bq, None, vd), lambda i, h, j: (i, j, h, 0)),
       pl.BlockSpec((None, None, bq), lambda i, h, j: (i, h, j)),
       pl.BlockSpec((None, None, bq), lambda i, h, j: (i, h, j))),
      (jax.ShapeDtypeStruct((b, t, n, vd), v.dtype),
       jax.ShapeDtypeStruct((b, n, t), jnp.float32), jax.ShapeDtypeStruct((b, n, t), jnp.float32)),
      interpret, 'mqa_flash_attention_fwd', num_warps, num_stages)(seed, q, k, v, mask)
  return o, (q, k, v, mask, seed, o, m, l)


def _flash_bwd(rate, bq, bk, interpret, num_warps, num_stages, res, do):
  q, k, v, mask, seed, o, m, l = res
  b, t, n, hd = q.shape
  s, kh, vd = k.shape[1], k.shape[2], v.shape[-1]
  g = n // kh
  d = jnp.einsum('BTNV,BTNV->BNT', do.astype(jnp.float32), o.astype(jnp.float32))
  row_stats = [pl.BlockSpec((None, bq, None, vd), lambda i, h, j: (i, j, h, 0))] + [
      pl.BlockSpec((None, None, bq), lambda i, h, j: (i, h, j))] * 3
  dq = _call(
      functools.partial(_dq_kernel, bk=bk, t=t, s=s, heads=n, rate=rate), (b, n, t // bq),
      _specs(t, s, g, hd, vd, bq, bk, False) + row_stats,
      pl.BlockSpec((None, bq, None, hd), lambda i, h, j: (i, j, h, 0)),
      jax.ShapeDtypeStruct(q.shape, q.dtype), interpret, 'mqa_flash_attention_dq',
      num_warps, num_stages)(seed, q, k, v, mask, do, m, l, d)
  whole_rows = [pl.BlockSpec((None, t, None, vd), lambda i, h, j: (i, 0, h, 0))] + [
      pl.BlockSpec((None, None, t), lambda i, h, j: (i, h, 0))] * 3
  dk, dv = _call(   # per query head: [B, S, N, H] and [B, S, N, V], summed over each group below
      functools.partial(_dkv_kernel, bq=bq, t=t, s=s, heads=n, rate=rate), (b, n, s // bk),
      _specs(t, s, g, hd, vd, bq, bk, True) + whole_rows,
      (pl.BlockSpec((None, bk, None, hd), lambda i, h, j: (i, j, h, 0)),
       pl.BlockSpec((None, bk, None, vd), lambda i, h, j: (i, j, h, 0))),
      (jax.ShapeDtypeStruct((b, s, n, hd), jnp.float32), jax.ShapeDtypeStruct((b, s, n, vd), jnp.float32)),
      interpret, 'mqa_flash_attention_dkv', num_warps, num_stages)(seed, q, k, v, mask, do, m, l, d)
  dk = dk.reshape(b, s, kh, g, hd).sum(3).astype(k.dtype)            # 'BSKGH->BSKH'
  dv = dv.reshape(b, s, kh, g, vd).sum(3).astype(v.dtype)
  return dq, dk, dv, None, None


_flash.defvjp(_forward, _flash_bwd)


def flash_attention(q: Array, k: Array, v: Array, mask: Array | None = None, *, rate: float = 0.0,
                    seed: Array | int = 0, block_q: int = 64, block_k: int = 64,
                    interpret: bool | None = None, num_warps: int = 4, num_stages: int = 2) -> Array:
  """Softmax attention of every query position, differentiable, dropout on the probabilities.

  q [B, T, N, H] (already scaled by H^-0.5), k [B, S, K, H], v [B, S, K, V] with N a multiple of K
  (query head n reads kv head n // G); mask [B, T, S] (True = may attend; None = all); rate: the
  attention dropout rate (0 = none); seed: a uint32 scalar, a fresh one per step and layer.
  Returns [B, T, N, V] in v.dtype; equals ``attention.attend`` (with the keep bits of
  ``dropout_keep`` standing in for flax's dropout). T and S must be multiples of the blocks, which
  are powers of 2 (as are H and V) for the compiled kernel.
  """
  b, t, n, hd = q.shape
  s, kh, vd = k.shape[1], k.shape[2], v.shape[-1]
  if k.shape != (b, s, kh, hd) or v.shape[:3] != (b, s, kh) or n % kh:
    raise ValueError(f'flash_attention: q {q.shape}, k {k.shape}, v {v.shape} do not agree '
                     f'(N must be a multiple of K)')
  if not 0.0 <= rate < 1.0:
    raise ValueError(f'flash_attention: dropout rate {rate} must be in [0, 1)')
  if interpret is None:
    interpret = platform.interpret_default('flash_attention')
  bq, bk = _block(t, block_q), _block(s, block_k)
  if not interpret and not all(_pow2(x) and x >= 16 for x in (bq, bk, hd, vd)):
    raise ValueError(f'flash_attention: the compiled (Triton) kernel needs power-of-2 blocks and head '
                     f'dims >= 16, got blocks {bq} x {bk} (T = {t}, S = {s}), H = {hd}, V = {vd}; '
                     f"use --config.model.train_attention_impl=xla for these shapes")
  mask = (jnp.ones((b, t, s), jnp.int8) if mask is None
          else jnp.broadcast_to(mask, (b, t, s)).astype(jnp.int8))
  seed = jnp.asarray(seed, jnp.uint32).reshape(1)
  return _flash(q, k, v, mask, seed, float(rate), bq, bk, interpret, num_warps, num_stages)
