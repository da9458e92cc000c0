"""Greedy and beam search, each ONE ``lax.while_loop`` that compiles once.

The searches know nothing about attention. They call

    step(params, cache, tokens [B, 1]) -> (logits [B, 1, Y] float32, cache)

on a cache of nn/kv_cache.py's layout: its per-hypothesis ``state`` (which a beam search reorders
with ``kv_cache.reorder``), its per-sentence ``memory`` (never tiled, never reordered) and its
``position``. So for a beam of W the cache is built for B·W hypotheses over an encoder memory of B
rows, and the model broadcasts the memory over the W hypotheses itself.

Shape letters: B sentences, W beams (hypotheses per sentence), T decoded length, P prompt length,
Y vocabulary.
Flattened hypotheses are ``B·W`` with beam minor (row b·W + w).

Conventions
  * Decoding starts from BOS; the output holds the generated tokens only (no BOS): EOS-terminated,
    PAD after. PAD and BOS are never emitted (an untrained model may rank them first; emitting them
    would corrupt the "PAD after EOS" format). Their log-probabilities are masked, not renormalised,
    so scores stay the model's own log-likelihoods.
  * ``per_row_max_len[b]`` caps sentence b's hypothesis at that many tokens, EOS included; a
    hypothesis that reaches it without EOS ends there, truncated (no EOS is forced).
  * Beam score = sum of token log-probs / ((5 + len) / 6) ** alpha (GNMT), len counting EOS.
  * ``vocab_size`` (optional): ids >= it are never emitted either. The model pads its vocabulary to a
    multiple of 128; those ids have no piece in the tokenizer.
  * ``prefix`` [B, P] (optional, PAD where free) forces the first tokens: an LM prompt.

Beam search keeps two sets per sentence, W alive hypotheses (not ended) and the best W finished
ones (ended by EOS or by the length cap). Each step
  1. expands the alive set to W·Y candidates (summed log-probs);
  2. takes the W best candidates (one top_k over W·Y);
  3. moves those that end (EOS, or every candidate at the sentence's length cap) into the finished
     top W, scored logp / lp(len); the others are the new alive set, so a finished hypothesis frees
     its beam slot for one step and the beam refills from the W best candidates of the next step;
  4. marks the sentence done at its length cap, when nothing is alive, or when no alive hypothesis
     can still beat its worst finished one: log-probs only fall, so an alive hypothesis's best
     possible final score is logp / max(lp(next len), lp(cap)) (scores are <= 0);
  5. reorders the per-hypothesis cache state to follow the W parents: the only data movement a beam
     adds to a step, so the scheme matters (kv_cache.reorder: whole leaves, the written slots only,
     or in place with the Pallas kernel).
With W at least the number of candidates of every step the search is exhaustive, which the
brute-force test checks. t2t / t5x instead keep W alive hypotheses always and finish EOS candidates
from the top 2W; that searches a little more but makes beam 1 differ from greedy. Here beam_search
with W = 1 IS greedy_search (with its scores), and greedy takes its argmax over the masked
log-probabilities beam search ranks, so the two agree token for token in every dtype: two
differently compiled loops would otherwise round the same argmax differently in bfloat16.
The loop stops when every sentence is done.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

from mqa_repro.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from mqa_repro.nn import kv_cache

Array = jax.Array
Cache = kv_cache.Cache
Step = Callable[[Any, Cache, Array], tuple[Array, Cache]]

NEG_INF = -jnp.inf
_BANNED = (PAD_ID, BOS_ID)   # never emitted (module docstring)


def length_penalty(length: Array | int, alpha: float) -> Array:
  """GNMT length penalty ((5 + len) / 6) ** alpha."""
  return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def _allowed_log_probs(logits: Array, vocab_size: int | None = None) -> Array:
  """logits [..., Y] -> log-probs with PAD, BOS and ids >= vocab_size set to -inf (not renormalised)."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  ids = jnp.arange(logp.shape[-1])
  banned = functools.reduce(jnp.logical_or, [ids == i for i in _BANNED])
  if vocab_size is not None:
    banned |= ids >= vocab_size
  return jnp.where(banned, NEG_INF, logp)


def _row_limits(batch_size: int, max_len: int, per_row_max_len: Array | None) -> Array:
  """[B] int32 maximum hypothesis length per sentence, capped at the loop's max_len."""
  if per_row_max_len is None:
    return jnp.full((batch_size,), max_len, jnp.int32)
  return jnp.minimum(jnp.asarray(per_row_max_len, jnp.int32), max_len)


def _padded_prefix(prefix: Array | None, batch_size: int, max_len: int) -> Array | None:
  """prefix [B, P] -> [B, max_len] (PAD = not forced), or None."""
  if prefix is None:
    return None
  prefix = jnp.asarray(prefix, jnp.int32)[:, :max_len]
  return jnp.pad(prefix, ((0, 0), (0, max_len - prefix.shape[1])), constant_values=PAD_ID)


def _at(x: Array, i: Array, axis: int) -> Array:
  return lax.dynamic_index_in_dim(x, i, axis=axis, keepdims=False)


# --------------------------------------------------------------------------------------------------
# Greedy search.


def greedy_search(step: Step, params: Any, cache: Cache, batch_size: int, max_len: int,
                  per_row_max_len: Array | None = None, prefix: Array | None = None,
                  vocab_size: int | None = None,
                  with_scores: bool = False) -> Array | tuple[Array, Array]:
  """Greedy decoding of `batch_size` rows: tokens [B, max_len], EOS-terminated, PAD after; with
  `with_scores` also each row's summed log-probability [B] (float32).

  One ``lax.while_loop`` over at most max_len steps, leaving as soon as every row has ended; jit the
  caller (``step`` and the int arguments static). `cache` holds B hypotheses and max_len slots.
  The argmax is taken over the same masked log-probabilities beam search ranks (module docstring).
  """
  b, t = batch_size, max_len
  limit = _row_limits(b, t, per_row_max_len)                        # [B]
  forced = _padded_prefix(prefix, b, t)                             # [B, T] | None

  def cond(carry):
    i, _, _, done, _, _ = carry
    return (i < t) & ~jnp.all(done)

  def body(carry):
    i, cache, last, done, out, score = carry
    logits, cache = step(params, cache, last[:, None])              # [B, 1, Y]
    logp = _allowed_log_probs(logits[:, 0], vocab_size)             # [B, Y]
    token = jnp.argmax(logp, axis=-1).astype(jnp.int32)
    if forced is not None:
      f = _at(forced, i, 1)
      token = jnp.where(f != PAD_ID, f, token)
    token = jnp.where(done, PAD_ID, token)
    score = score + jnp.where(done, 0.0, jnp.take_along_axis(logp, token[:, None], axis=1)[:, 0])
    out = lax.dynamic_update_slice(out, token[:, None], (0, i))
    done = done | (token == EOS_ID) | (i + 1 >= limit)
    return i + 1, cache, token, done, out, score

  init = (jnp.zeros((), jnp.int32), cache, jnp.full((b,), BOS_ID, jnp.int32), limit <= 0,
          jnp.full((b, t), PAD_ID, jnp.int32), jnp.zeros((b,), jnp.float32))
  out = lax.while_loop(cond, body, init)
  return (out[-2], out[-1]) if with_scores else out[-2]


# --------------------------------------------------------------------------------------------------
# Beam search.


def beam_search(step: Step, params: Any, cache: Cache, batch_size: int, beam_size: int, max_len: int,
                alpha: float = 0.6, per_row_max_len: Array | None = None, prefix: Array | None = None,
                vocab_size: int | None = None, reorder: str = 'full') -> tuple[Array, Array]:
  """Beam search: (tokens [B, W, max_len], scores [B, W]), each sentence's hypotheses best first.

  `cache` holds B·W hypotheses (state) and B sentences (memory). Finished hypotheses only; a slot
  that never received one (possible only when fewer than W sequences exist) has score -inf and PAD
  tokens. ``reorder``: kv_cache.reorder's scheme ('full' needs nothing but the hypothesis axis;
  decoding.batch picks 'prefix' or 'pallas' from the model's attention path, decode_impl.beam_reorder;
  'none' gives WRONG beams, for measuring only).
  """
  b, w, t = batch_size, beam_size, max_len
  if reorder not in kv_cache.REORDERS:
    raise ValueError(f"reorder must be one of {kv_cache.REORDERS}, got {reorder!r}")
  if w == 1:   # greedy search itself (module docstring); nothing to reorder
    tokens, logp = greedy_search(step, params, cache, b, t, per_row_max_len, prefix, vocab_size,
                                 with_scores=True)
    length = jnp.sum(tokens != PAD_ID, axis=1)
    score = jnp.where(length > 0, logp / length_penalty(length, alpha), NEG_INF)
    return tokens[:, None], score[:, None]
  limit = _row_limits(b, t, per_row_max_len)                        # [B]
  forced = _padded_prefix(prefix, b, t)
  tokens0 = jnp.full((b * w, 1), BOS_ID, jnp.int32)
  y = jax.eval_shape(step, params, cache, tokens0)[0].shape[-1]
  lp_cap = length_penalty(limit, alpha)                              # [B]
  rows = jnp.arange(b)[:, None] * w                                  # [B, 1] first row of sentence

  def cond(carry):
    return (carry['i'] < t) & ~jnp.all(carry['done'])

  def body(c):
    i = c['i']
    logits, cache = step(params, c['cache'], c['token'].reshape(b * w, 1))
    logp = _allowed_log_probs(logits[:, 0], vocab_size).reshape(b, w, y)   # [B, W, Y]
    if forced is not None:
      f = _at(forced, i, 1)[:, None, None]                           # [B, 1, 1]
      logp = jnp.where((f != PAD_ID) & (jnp.arange(y) != f), NEG_INF, logp)
    cand = (c['alive_logp'][:, :, None] + logp).reshape(b, w * y)   # [B, W·Y]
    at_cap = i + 1 >= limit                                          # [B]
    lp = length_penalty(i + 1, alpha)

    # 2. the W best candidates (parent beam, token) and their sequences
    top_logp, flat = lax.top_k(cand, w)                              # [B, W]
    parent, token = flat // y, (flat % y).astype(jnp.int32)
    seq = jnp.take_along_axis(c['alive_seq'], parent[:, :, None], axis=1)   # [B, W, T]
    seq = lax.dynamic_update_slice(seq, token[:, :, None], (0, 0, i))

    # 3. those that end (EOS, or any at the length cap) retire into the finished top W
    ends = (token == EOS_ID) | at_cap[:, None]
    pool_score = jnp.concatenate([c['fin_score'], jnp.where(ends, top_logp / lp, NEG_INF)], axis=1)
    pool_seq = jnp.concatenate([c['fin_seq'], seq], axis=1)          # [B, 2W, T]
    fin_score, pick = lax.top_k(pool_score, w)                      # [B, W]
    fin_seq = jnp.take_along_axis(pool_seq, pick[:, :, None], axis=1)
    alive_logp = jnp.where(ends, NEG_INF, top_logp)                 # their beam slots stay empty
    best_alive = jnp.max(alive_logp, axis=1)                         # [B]

    # 4. done: at the cap, no alive hypothesis left, or none can beat the worst finished one
    best_possible = best_alive / jnp.maximum(length_penalty(i + 2, alpha), lp_cap)
    done = c['done'] | at_cap | (best_alive == NEG_INF) | (fin_score[:, -1] > best_possible)
    alive_logp = jnp.where(done[:, None], NEG_INF, alive_logp)      # done rows expand nothing

    # 5. beams follow their parents
    cache = kv_cache.reorder(cache, (rows + parent).reshape(b * w), parent, reorder)
    return dict(i=i + 1, cache=cache, token=token, alive_logp=alive_logp, alive_seq=seq,
                fin_score=fin_score, fin_seq=fin_seq, done=done)

  init = dict(
      i=jnp.zeros((), jnp.int32), cache=cache, token=jnp.full((b, w), BOS_ID, jnp.int32),
      # all W beams start as the same empty hypothesis: only beam 0 may expand at step 0
      alive_logp=jnp.tile(jnp.where(jnp.arange(w) == 0, 0.0, NEG_INF), (b, 1)).astype(jnp.float32),
      alive_seq=jnp.full((b, w, t), PAD_ID, jnp.int32),
      fin_score=jnp.full((b, w), NEG_INF, jnp.float32),
      fin_seq=jnp.full((b, w, t), PAD_ID, jnp.int32),
      done=limit <= 0)
  out = lax.while_loop(cond, body, init)
  valid = out['fin_score'] > NEG_INF
  return jnp.where(valid[:, :, None], out['fin_seq'], PAD_ID), out['fin_score']
