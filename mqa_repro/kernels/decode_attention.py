"""Fused single-token decode attention in Pallas (flash-decoding style, Triton backend on GPU).

One new query token per hypothesis (T = 1) against a K/V cache. Shape letters as in attention.py:

  B  memory rows (sentences for cross-attention; hypotheses for self-attention)
  W  hypotheses sharing one memory row (beam search cross-attention; 1 otherwise)
  S  cache slots (L for a self-attention cache, the source length for cross-attention)
  K  kv heads    G  query heads per kv head    H  query/key head dim    V  value head dim
  M  = W·G query rows that share one kv head of one memory row (Mp: M padded for the GPU)

Why a kernel: XLA runs the decode einsums ('BWTKGH,BSKH->BWKGTS', 'BWKGTS,BSKV->BWTKGV') as batched
matmuls of M = G rows, well below copy bandwidth, and reads all S slots although only `length` are
live (results/notes/kernels.md). Here one program owns (memory row b, kv head k): it streams that
head's K/V blocks once, for all M = W·G query rows that share them (the point of multi-query
attention), stops after the live slots (a dynamic trip count) and keeps an online softmax in float32:

  for each block j of `block_k` live slots:
    s   = q [M, H] · k_j [bk, H]^T                      'MH,SH->MS'   (float32)
    m'  = max(m, max_S s);  a = exp(m - m');  p = exp(s - m')
    l   = a·l + sum_S p;    acc = a·acc + p [M, bk] · v_j [bk, V]      'MS,SV->MV'
  out = acc / l

Masking follows ``attention.attend`` exactly: a masked-out slot gets the logit -1e30 (so a fully
masked row averages V over all S slots, as the reference does), while slots past `length` are not
read at all. No read ever leaves the cache: the last block is shifted back to end at S and the
overlap with the previous block is excluded (logit -inf, V zeroed, so stale slots cannot leak even as
NaN/inf).

GPU notes (Triton lowering): every loaded block must have a power-of-2 size, so H and V must be
powers of 2 (>= 16 for the tensor-core path) and M is padded up to Mp (a few bytes per row: q is one
token, K/V are S tokens). Rows with M >= 4 use tensor-core dots (Mp padded to 16, Triton's minimum);
M <= 2 (multi-head, small groups) multiplies and reduces on the CUDA cores instead, where a dot would
waste most of a 16-row tile.

Split over S (flash-decoding's split-K). One program per (b, k) is enough parallelism at the paper's
batch (B·K >= 1024 programs), but at batch 1 multi-head has 8 programs and multi-query one, each
walking its whole cache block after block: a long cache then costs a chain of dependent loads, not
bandwidth. With P > 1 splits, program (b, k, p) walks the p-th of P equal runs of the live blocks and
writes its unnormalised partial (m_p, l_p, acc_p); the P partials then combine exactly:

  m = max_P m_p;  w_p = exp(m_p - m);  out = sum_P w_p·acc_p / sum_P w_p·l_p     'BKPM,BKPMV->BKMV'

`splits` = None picks P so that about SPLIT_TARGET programs run and each split keeps at least
SPLIT_MIN_BLOCKS blocks of the cache; at the paper's batch that is P = 1, the single-pass kernel.
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
_NEG = -1e30  # the masked logit of attention.attend (a masked slot still counts in a fully masked row)
# splits=None: split S until about this many programs run (one per SM of a current datacenter GPU:
# 132 on an H100 / H200), keeping at least SPLIT_MIN_BLOCKS blocks per split (`bench --kernels`
# times P as a tuning).
SPLIT_TARGET = 128
SPLIT_MIN_BLOCKS = 8


def _next_pow2(n: int) -> int:
  return 1 << max(n - 1, 0).bit_length()


def _prev_pow2(n: int) -> int:
  return 1 << (n.bit_length() - 1)


def _kernel(len_ref, q_ref, k_ref, v_ref, *rest, block_k: int, slots: int, use_dot: bool,
            has_mask: bool, splits: int):
  """One program: memory row b, kv head k (and split p when splits > 1). Refs: len [1], q [Mp, H],
  k [S, H], v [S, V], (mask [S]), then out [Mp, V]; with splits > 1 instead the partials
  m [Mp], l [Mp], acc [Mp, V] (float32, unnormalised)."""
  mask_ref, *outs = rest if has_mask else (None, *rest)
  bk = block_k
  n = len_ref[0]                                     # live slots of this row
  q = q_ref[...]                                     # [Mp, H]
  mp, vd = q.shape[0], v_ref.shape[-1]

  def body(j, carry):
    m, l, acc = carry                                # [Mp], [Mp], [Mp, V] float32
    start = jnp.minimum(j * bk, slots - bk)          # the last block ends at S: no read past the cache
    kb = k_ref[pl.ds(start, bk), :]                  # [bk, H]
    vb = v_ref[pl.ds(start, bk), :]                  # [bk, V]
    pos = start + lax.broadcasted_iota(jnp.int32, (bk,), 0)
    live = (pos >= j * bk) & (pos < n)               # not seen in the previous block, and < length
    if use_dot:
      s = lax.dot_general(q, kb, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST,
                          preferred_element_type=jnp.float32)                      # 'MH,SH->MS'
    else:
      s = jnp.sum(q[:, None, :].astype(jnp.float32) * kb[None, :, :].astype(jnp.float32), axis=-1)
    if has_mask:
      s = jnp.where((mask_ref[pl.ds(start, bk)] != 0)[None, :], s, _NEG)
    s = jnp.where(live[None, :], s, -jnp.inf)
    m_new = jnp.maximum(m, jnp.max(s, axis=-1))      # finite: every block has >= 1 live slot
    alpha = jnp.exp(m - m_new)
    p = jnp.exp(s - m_new[:, None])                  # [Mp, bk]; exactly 0 off the live slots
    vb = jnp.where(live[:, None], vb, jnp.zeros_like(vb))
    if use_dot:
      pv = lax.dot_general(p.astype(vb.dtype), vb, (((1,), (0,)), ((), ())),
                           precision=lax.Precision.HIGHEST,
                           preferred_element_type=jnp.float32)                     # 'MS,SV->MV'
    else:
      pv = jnp.sum(p[:, :, None] * vb[None, :, :].astype(jnp.float32), axis=1)
    return m_new, alpha * l + jnp.sum(p, axis=-1), alpha[:, None] * acc + pv

  init = (jnp.full((mp,), -jnp.inf, jnp.float32), jnp.zeros((mp,), jnp.float32),
          jnp.zeros((mp, vd), jnp.float32))
  blocks = (n + bk - 1) // bk
  if splits == 1:
    _, l, acc = lax.fori_loop(0, blocks, body, init)
    # length 0 reads nothing: output 0 rather than 0 / 0
    l = jnp.where(l > 0, l, 1.0)
    outs[0][...] = (acc / l[:, None]).astype(outs[0].dtype)
    return
  per = (blocks + splits - 1) // splits              # this split's run of live blocks (maybe none)
  first = pl.program_id(2) * per
  m, l, acc = lax.fori_loop(first, jnp.minimum(first + per, blocks), body, init)
  outs[0][...], outs[1][...], outs[2][...] = m, l, acc


def auto_splits(programs: int, slots: int, block_k: int) -> int:
  """P for `splits=None`: about SPLIT_TARGET programs in all, >= SPLIT_MIN_BLOCKS blocks a split."""
  by_programs = -(-SPLIT_TARGET // max(programs, 1))
  return max(1, min(by_programs, slots // block_k // SPLIT_MIN_BLOCKS))


def _combine(m: Array, l: Array, acc: Array) -> Array:
  """The P partials of each (b, k) -> normalised [B, K, Mp, V] float32. m, l [B, K, P, Mp],
  acc [B, K, P, Mp, V]; an empty split has m = -inf, so its weight is 0."""
  top = jnp.max(m, axis=2, keepdims=True)                                    # [B, K, 1, Mp]
  w = jnp.exp(m - jnp.where(jnp.isfinite(top), top, 0.0))                    # [B, K, P, Mp]
  total = jnp.einsum('BKPM,BKPM->BKM', w, l)
  out = jnp.einsum('BKPM,BKPMV->BKMV', w, acc)
  # length 0 reads nothing: output 0 rather than 0 / 0
  return out / jnp.where(total > 0, total, 1.0)[..., None]


def decode_attention(q: Array, k: Array, v: Array, *, length: Array | int | None = None,
                     mask: Array | None = None, beams: int = 1, block_k: int | None = None,
                     interpret: bool | None = None, num_warps: int | None = None,
                     num_stages: int = 2, tensor_cores: bool | None = None,
                     splits: int | None = None) -> Array:
  """Softmax attention of one query token per hypothesis against a K/V cache.

  q [B·W, K, G, H] (already scaled by H^-0.5), k [B, S, K, H], v [B, S, K, V]. Row r of q attends to
  memory row r // W (``beams`` = W hypotheses share one row: never tiled).
  length: live slots, a scalar or [B] (default S): only slots < length are read, e.g. ``index + 1``
    for a self-attention cache, ``min(index + 1, window)`` for a local-attention ring buffer (its live
    slots are always a prefix; order does not matter to softmax).
  mask [B, S] (True = may attend), e.g. the source padding for cross-attention; with no `length`,
    each row reads up to its last True slot (all S when it has none, matching ``attend``).
  Returns [B·W, K, G, V] in v.dtype; equals ``attention.attend`` with T = 1.
  interpret: run the Pallas interpreter (default: on CPU only).
  tensor_cores: force the dot (True; M padded to 16) or the CUDA-core (False) inner products;
    default: dots when M >= 4. block_k, num_warps, num_stages: tuning (``mqa-repro bench --kernels``).
  splits: P programs per (memory row, kv head), each over a 1/P run of the live slots (see above);
    None: ``auto_splits``; 1: the single-pass kernel.
  """
  bw, kh, g, hd = q.shape
  b, slots, kh2, vd = v.shape
  if k.shape[:3] != (b, slots, kh) or kh2 != kh or bw != b * beams:
    raise ValueError(f'decode_attention: q {q.shape} (B·W = {b}·{beams}), k {k.shape}, v {v.shape} '
                     f'do not agree')
  if interpret is None:
    interpret = platform.interpret_default('decode_attention')
  if not interpret and (hd != _next_pow2(hd) or vd != _next_pow2(vd)):
    raise ValueError(f'decode_attention: head dims H = {hd}, V = {vd} must be powers of 2 for the '
                     f"compiled (Triton) kernel; use attention_impl='xla' for these dimensions")
  m = beams * g
  mp = _next_pow2(m)
  use_dot = mp >= 4 if tensor_cores is None else tensor_cores
  use_dot = use_dot and min(hd, vd) >= 16            # tensor cores need >= 16 along every dot axis
  if use_dot:
    mp = max(mp, 16)                                  # Triton's smallest dot tile
  # Defaults: the fastest tunings `mqa-repro bench --kernels` found at the paper's shapes
  # (results/notes/kernels.md): dots at 64 slots x 4 warps, the CUDA-core path at 16 slots x 1 warp.
  if block_k is None:                                 # CUDA-core path: keep [Mp, bk, H] in registers
    block_k = 64 if use_dot else max(16, 2048 // (mp * max(hd, vd)))
  if num_warps is None:
    num_warps = 4 if use_dot else 1
  bk = min(_prev_pow2(block_k), _prev_pow2(slots))
  if splits is None:
    splits = auto_splits(b * kh, slots, bk)
  if splits < 1:
    raise ValueError(f'decode_attention: splits = {splits}; it must be >= 1')

  # [B·W, K, G, H] -> [B, K, W·G, H] (a reshape when W = 1), padded to Mp rows
  qg = q.reshape(b, beams, kh, g, hd).transpose(0, 2, 1, 3, 4).reshape(b, kh, m, hd)
  if mp > m:
    qg = jnp.pad(qg, ((0, 0), (0, 0), (0, mp - m), (0, 0)))

  if length is None and mask is not None:
    idx = jnp.arange(1, slots + 1, dtype=jnp.int32)
    last = jnp.max(jnp.where(mask, idx, 0), axis=-1)  # 1 + last attendable slot; 0 if none
    length = jnp.where(last > 0, last, slots)
  length = jnp.clip(jnp.broadcast_to(jnp.asarray(slots if length is None else length, jnp.int32),
                                     (b,)), 0, slots)

  # grid (B, K) or (B, K, P); the index maps take the split index last and ignore it
  in_specs = [pl.BlockSpec((1,), lambda i, h, *p: (i,)),                       # length [B]
              pl.BlockSpec((None, None, mp, hd), lambda i, h, *p: (i, h, 0, 0)),  # q [B, K, Mp, H]
              pl.BlockSpec((None, slots, None, hd), lambda i, h, *p: (i, 0, h, 0)),  # k [B, S, K, H]
              pl.BlockSpec((None, slots, None, vd), lambda i, h, *p: (i, 0, h, 0))]  # v [B, S, K, V]
  args = [length, qg, k, v]
  if mask is not None:
    in_specs.append(pl.BlockSpec((None, slots), lambda i, h, *p: (i, 0)))        # mask [B, S]
    args.append(mask.astype(jnp.int8))
  kernel = functools.partial(_kernel, block_k=bk, slots=slots, use_dot=use_dot,
                             has_mask=mask is not None, splits=splits)
  if splits == 1:
    out_shape = jax.ShapeDtypeStruct((b, kh, mp, vd), v.dtype)
    out_specs = pl.BlockSpec((None, None, mp, vd), lambda i, h: (i, h, 0, 0))
  else:   # the partials m, l [B, K, P, Mp] and acc [B, K, P, Mp, V]
    out_shape = (jax.ShapeDtypeStruct((b, kh, splits, mp), jnp.float32),) * 2 + (
        jax.ShapeDtypeStruct((b, kh, splits, mp, vd), jnp.float32),)
    out_specs = (pl.BlockSpec((None, None, None, mp), lambda i, h, p: (i, h, p, 0)),) * 2 + (
        pl.BlockSpec((None, None, None, mp, vd), lambda i, h, p: (i, h, p, 0, 0)),)
  out = pl.pallas_call(
      kernel,
      out_shape=out_shape,
      grid=(b, kh) if splits == 1 else (b, kh, splits),
      in_specs=in_specs,
      out_specs=out_specs,
      # Triton explicitly: since jax 0.10 pallas_call on GPU defaults to Mosaic GPU
      compiler_params=pltriton.CompilerParams(num_warps=num_warps, num_stages=num_stages),
      interpret=interpret,
      name='mqa_decode_attention',
  )(*args)
  if splits > 1:
    out = _combine(*out).astype(v.dtype)
  out = out[:, :, :m].reshape(b, kh, beams, g, vd).transpose(0, 2, 1, 3, 4)  # [B, W, K, G, V]
  return out.reshape(bw, kh, g, vd)
