"""Incremental decoding: greedy and beam search, each ONE ``lax.while_loop`` that compiles once.

The searches know nothing about attention. They call

    step(params, cache, tokens [B, 1]) -> (logits [B, 1, V] float32, cache)

and rely on this cache contract (``model.Transformer.init_cache``)::

    {'state':    per-HYPOTHESIS pytree: every array leaf has a leading hypothesis axis (0-d leaves,
                 e.g. a write index, are shared); beam search reorders it,
     'memory':   per-SENTENCE pytree (cross-attention K/V of B source sentences, shared by each
                 sentence's W hypotheses): never tiled, never reordered,
     'position': scalar}

so for a beam of W the cache is built for B·W hypotheses over an encoder memory of B rows, and the
model broadcasts the memory over the W hypotheses itself (``Attention.decode_cross``).

Shape letters: B sentences, W beams (hypotheses per sentence), T decoded length, V vocabulary,
S source length. Flattened hypotheses are ``B·W`` with beam minor (row b·W + w).

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
  1. expands the alive set to W·V candidates (summed log-probs);
  2. takes the W best candidates (one top_k over W·V);
  3. moves those that end (EOS, or every candidate at the sentence's length cap) into the finished
     top W, scored logp / lp(len); the others are the new alive set, so a finished hypothesis frees
     its beam slot for one step and the beam refills from the W best candidates of the next step;
  4. marks the sentence done at its length cap, when nothing is alive, or when no alive hypothesis
     can still beat its worst finished one: log-probs only fall, so an alive hypothesis's best
     possible final score is logp / max(lp(next len), lp(cap)) (scores are <= 0).
With W = 1 this is greedy search (EOS wins the one slot only when it is the argmax), and beam_search
runs greedy_search for it ("Determinism" below). With W at least the number of candidates of every
step it is exhaustive, which the brute-force test checks.
(t2t / t5x instead keep W alive hypotheses always and finish EOS candidates from the top 2W; that
searches a little more but makes beam 1 differ from greedy.)
The loop stops when every sentence is done.

Determinism. Hypotheses must not depend on how sentences are batched, or BLEU moves with
--batch-size. In bfloat16 they do (issue 16: greedy 9 of 51 newstest lines differ between batches
of 1 and 64, beam 4 15 lines). A row's logits come out of matmuls whose kernel and summation order
follow the batch shape (XLA's CPU backend: YNNPACK for a block of rows, a matrix-vector product for
one row; GPUs: cuBLAS picks by shape) and whose fusion with neighbouring ops varies between compiled
programs, and every bf16 intermediate rounds to 8 significant bits, so such differences reach the
logits at the size of the gaps between a model's top candidates, and ties are common. In float32
the same variations move a logit by about 1e-7 relative: a flip needs two candidates within that
of each other. This is not bitwise batch invariance (that takes batch-invariant kernels), but no
line changed in 51 (issue 16) nor in the tests' 64 lines at batches of 1, 7 and 64. So
translate_batch / continue_batch decode in ``config.decode.dtype``, 'float32' by default (the
weights are float32 already; activations and the cache become float32), traced under matmul
precision 'highest' so that GPUs use no TF32 or bf16 passes either; '' keeps the model's dtype
(faster, batch-dependent). See ``decode_model``.
Beam 1 and greedy: the same choice mathematically, but two differently compiled loops rounded
bf16 differently and disagreed (issue 16: 22 of 51 lines), so beam_search with W = 1 runs
greedy_search (with its scores), which takes its argmax over the masked log-probabilities beam
search ranks: the two agree token for token in every dtype.

Reordering cost (the only data movement beam search adds to a step). The alive hypotheses of step
i+1 descend from arbitrary parents, so the per-hypothesis self-attention cache must follow them: a
gather of ``cache['state']`` along the hypothesis axis (memory is per sentence and never moves).
  * 'full' gathers whole leaves: it reads and writes the whole cache, 2 · B·W · L · K · (H + V) ·
    bytes per layer and step (L = cache slots = the loop's max_len), on top of the one read the
    attention itself makes. It relies on nothing but the cache contract.
  * 'prefix' (translate_batch / continue_batch on the XLA attention path) uses attention.py's
    layout: slot = position (mod L for a ring buffer), so after step i only slots [0, i] hold
    anything; later slots are zero for every hypothesis and need no copy. A ``fori_loop`` over
    chunks of 16 slots gathers each chunk and writes it back in place (dynamic_update_slice of the
    loop-carried buffer), so the cost follows the decoded length, not L. A whole-cache gather of a
    prefix-sized ``lax.switch`` branch was tried first and was SLOWER than 'full' on CPU (XLA copies
    the whole state in and out of the conditional); the in-place chunk loop is what made 'prefix'
    pay.
  * 'pallas' (translate_batch / continue_batch when the model's attention_impl is a Pallas path)
    does what 'prefix' does in place, in one pass (kernels/beam_reorder.py): parents never leave
    their sentence, so one program permutes a sentence's W rows of a chunk. XLA's chunk loop moves
    each copied byte four times (gather into a temporary, then write it back); the kernel reads and
    writes it once. On the H100 at the paper's beam shapes (`mqa-repro bench --profile`,
    results/gpu/h100_beam_profile_pallas_mha.json) XLA's reorder took 2.7 of a 4.8 ms multi-head
    step; with the kernel the beam decoder went from 18.7 to 11.9 µs/token
    (results/gpu/h100_pallas_mha_mqa.json -> h100_pallas_reorder_mha_mqa.json).
  * 'none' (measuring only) skips the gather and gives wrong beams: the baseline step cost.
The multi-query cache is h times smaller, and so is its gather: part of why the paper's MQA beam
search gains more over MHA than its greedy search does.

Measured with :func:`reorder_cost` (``python -m mqa_repro.decode``; random weights, EOS banned so
every scheme runs all its steps; per step = min over 5 round-robin repeats / steps):

  2-core CPU shared with other jobs (load ~3-5; XLA CPU, jax 0.10.2), float32, random translate
  model d_model 512, 6 decoder layers, h 8, d_k = d_v 64, B 8 sentences x W 4 beams, L 128 slots.
  ms per beam step, min of 5 (medians run 10-50% higher under that load):
    row  g  self-attn cache  steps | no reorder | 'full'       | 'prefix'     | gather alone: full / prefix
    mha  8       96 MiB       128  |   18.9     | 30.9 (+63%)  | 25.5 (+35%)  | 10.3 / 5.1  (192 MiB: 19.6 GB/s)
    mha  8       96 MiB        48  |   17.9     | 30.3 (+69%)  | 23.2 (+29%)  | 10.7 / 2.6
    mqa  1       12 MiB       128  |    9.2     |  9.6 (+4%)   |  9.7 (+6%)   | 0.41 / 0.28
    mqa  1       12 MiB        48  |    9.2     |  9.7 (+6%)   |  9.4 (+2%)   | 0.45 / 0.15
  For multi-head attention the whole-cache gather costs two thirds of a step: it moves twice the
  bytes the attention reads. Copying only the written slots halves the gather over a full-length
  decode and quarters it when the batch stops at 48 of 128 slots (the usual case: L is set by the
  longest source, most sentences end well before it). For multi-query attention the reorder is in
  the noise: its cache is 8x smaller (and fits the CPU's caches).
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mqa_repro.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

Array = jax.Array
Cache = dict[str, Any]
Step = Callable[[Any, Cache, Array], tuple[Array, Cache]]
NEG_INF = -jnp.inf
_BANNED = (PAD_ID, BOS_ID)   # never emitted (module docstring)


def length_penalty(length: Array | int, alpha: float) -> Array:
  """GNMT length penalty ((5 + len) / 6) ** alpha."""
  return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def _allowed_log_probs(logits: Array, vocab_size: int | None = None) -> Array:
  """logits [..., V] -> log-probs with PAD, BOS and ids >= vocab_size set to -inf (not renormalised)."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  v = jnp.arange(logp.shape[-1])
  banned = functools.reduce(jnp.logical_or, [v == i for i in _BANNED])
  if vocab_size is not None:
    banned |= v >= vocab_size
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
  The argmax is taken over the same masked log-probabilities beam search ranks (module docstring,
  "Determinism").
  """
  b, t = batch_size, max_len
  limit = _row_limits(b, t, per_row_max_len)                        # [B]
  forced = _padded_prefix(prefix, b, t)                             # [B, T] | None

  def cond(carry):
    i, _, _, done, _, _ = carry
    return (i < t) & ~jnp.all(done)

  def body(carry):
    i, cache, last, done, out, score = carry
    logits, cache = step(params, cache, last[:, None])              # [B, 1, V]
    logp = _allowed_log_probs(logits[:, 0], vocab_size)             # [B, V]
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


def _gather_rows(x: Array, src: Array) -> Array:
  """x [B·W, ...] -> x[src]; shared 0-d leaves stay."""
  return x if x.ndim == 0 else jnp.take(x, src, axis=0)


def _gather_prefix(leaves: list[Array], src: Array, written: Array, chunk: int) -> list[Array]:
  """Leaves [B·W, L, ...] (one L) -> rows src on slots [0, written) only, chunk by chunk, in place.

  A ``fori_loop`` over ceil(written / c) chunks of c = gcd(L, chunk) slots: each iteration reads one
  chunk, gathers its rows and writes it back where it was (an in-place dynamic_update_slice of the
  loop-carried buffer). Slots >= written were never written by anyone, so they need no copy; c
  divides L, so no chunk is clamped back over slots already gathered.
  """
  slots = leaves[0].shape[1]
  c = math.gcd(slots, chunk)

  def body(j, xs):
    start = j * c
    return tuple(lax.dynamic_update_slice_in_dim(
        x, jnp.take(lax.dynamic_slice_in_dim(x, start, c, axis=1), src, axis=0), start, axis=1)
        for x in xs)

  n = (jnp.minimum(written, slots) + c - 1) // c
  return list(lax.fori_loop(0, n, body, tuple(leaves)))


def reorder_state(state: Any, src: Array, written: Array | None = None, chunk: int = 16,
                  parent: Array | None = None) -> Any:
  """Gather each per-hypothesis leaf of `state` at rows src [B·W].

  written=None gathers whole leaves: any layout. With `written`, leaves of rank >= 2 are taken to be
  caches with the time axis at 1 holding positions [0, written) at slot = position (mod L for a
  ring buffer), the layout of attention.py, and only those slots are copied (``_gather_prefix``).
  parent [B, W] (with `written`; src = b·W + parent, a beam search's): the [R, L, K, H] cache leaves
  the Pallas kernel takes are permuted in place by it (kernels/beam_reorder.py), the rest as above.
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


REORDERS = ('prefix', 'pallas', 'full', 'none')


def beam_search(step: Step, params: Any, cache: Cache, batch_size: int, beam_size: int, max_len: int,
                alpha: float = 0.6, per_row_max_len: Array | None = None, prefix: Array | None = None,
                vocab_size: int | None = None, reorder: str = 'full') -> tuple[Array, Array]:
  """Beam search: (tokens [B, W, max_len], scores [B, W]), each sentence's hypotheses best first.

  `cache` holds B·W hypotheses (state) and B sentences (memory). Finished hypotheses only; a slot
  that never received one (possible only when fewer than W sequences exist) has score -inf and PAD
  tokens. ``reorder``: 'full' gathers whole state leaves (needs nothing but the cache contract);
  'prefix' copies only the written slots of attention.py's cache layout (``reorder_state``);
  'pallas' does the same in place with a Pallas kernel (one read and one write per byte instead of
  XLA's two of each; kernels/beam_reorder.py). translate_batch / continue_batch pick one of these
  two from the model (``model_reorder``). 'none' skips the gather: WRONG beams, for measuring only.
  """
  b, w, t = batch_size, beam_size, max_len
  if reorder not in REORDERS:
    raise ValueError(f"reorder must be one of {REORDERS}, got {reorder!r}")
  if w == 1:   # greedy search itself (module docstring, "Determinism"); nothing to reorder
    tokens, logp = greedy_search(step, params, cache, b, t, per_row_max_len, prefix, vocab_size,
                                 with_scores=True)
    length = jnp.sum(tokens != PAD_ID, axis=1)
    score = jnp.where(length > 0, logp / length_penalty(length, alpha), NEG_INF)
    return tokens[:, None], score[:, None]
  limit = _row_limits(b, t, per_row_max_len)                        # [B]
  forced = _padded_prefix(prefix, b, t)
  tokens0 = jnp.full((b * w, 1), BOS_ID, jnp.int32)
  v = jax.eval_shape(step, params, cache, tokens0)[0].shape[-1]
  lp_cap = length_penalty(limit, alpha)                              # [B]
  rows = jnp.arange(b)[:, None] * w                                  # [B, 1] first row of sentence

  def cond(carry):
    return (carry['i'] < t) & ~jnp.all(carry['done'])

  def body(c):
    i = c['i']
    logits, cache = step(params, c['cache'], c['token'].reshape(b * w, 1))
    logp = _allowed_log_probs(logits[:, 0], vocab_size).reshape(b, w, v)   # [B, W, V]
    if forced is not None:
      f = _at(forced, i, 1)[:, None, None]                           # [B, 1, 1]
      logp = jnp.where((f != PAD_ID) & (jnp.arange(v) != f), NEG_INF, logp)
    cand = (c['alive_logp'][:, :, None] + logp).reshape(b, w * v)   # [B, W·V]
    at_cap = i + 1 >= limit                                          # [B]
    lp = length_penalty(i + 1, alpha)

    # 2. the W best candidates (parent beam, token) and their sequences
    top_logp, flat = lax.top_k(cand, w)                              # [B, W]
    parent, token = flat // v, (flat % v).astype(jnp.int32)
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

    # Beams follow their parents: per-hypothesis state only (memory is per sentence).
    src = (rows + parent).reshape(b * w)
    if reorder != 'none':
      written = cache['position'] if reorder != 'full' else None     # positions written so far
      cache = dict(cache, state=reorder_state(cache['state'], src, written,
                                              parent=parent if reorder == 'pallas' else None))
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


# --------------------------------------------------------------------------------------------------
# Wrappers around model.Transformer.


def model_reorder(model) -> str:
  """The beam reorder that goes with the model's decode attention: the Pallas kernel with the
  Pallas attention paths, XLA's gather of the written slots with the reference path."""
  return 'prefix' if model.spec.attention_impl == 'xla' else 'pallas'


def decode_model(model, decode_dtype: str | None = None) -> tuple[Any, str | None]:
  """(model to decode with, matmul precision to trace it under) for a decode dtype: None takes
  ``model.spec.decode_dtype`` (config.decode.dtype), '' the model's own dtype. Float32 decodes
  trace under matmul precision 'highest', so no backend swaps in TF32 or bf16 passes."""
  import dataclasses
  dtype = (model.spec.decode_dtype if decode_dtype is None else decode_dtype) or model.spec.dtype
  if dtype != model.spec.dtype:
    model = model.clone(spec=dataclasses.replace(model.spec, dtype=dtype))
  return model, 'highest' if dtype == 'float32' else None


def model_step(model) -> Step:
  """The decoder's view of a Transformer: step(params, cache, tokens) -> (logits, cache)."""
  from mqa_repro.model import Transformer

  def step(params, cache, tokens):
    return model.apply({'params': params}, tokens, cache, method=Transformer.step)
  return step


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def _search(step: Step, params, cache, b: int, beam_size: int, max_len: int, alpha: float, limit,
            prefix=None, vocab_size=None, reorder: str = 'prefix',
            nbest: int = 0) -> Array | tuple[Array, Array]:
  """Best hypothesis per row, tokens [B, max_len]; with `nbest` the `nbest` best of each row and
  their beam scores, (tokens [B, nbest, max_len], scores [B, nbest])."""
  if nbest:
    tokens, scores = beam_search(step, params, cache, b, beam_size, max_len, alpha, limit, prefix,
                                 vocab_size, reorder=reorder)
    return tokens[:, :nbest], scores[:, :nbest]
  if beam_size == 1:
    return greedy_search(step, params, cache, b, max_len, limit, prefix, vocab_size)
  tokens, _ = beam_search(step, params, cache, b, beam_size, max_len, alpha, limit, prefix,
                          vocab_size, reorder=reorder)       # the model's cache layout is known
  return tokens[:, 0]


_STATIC = ('model', 'beam_size', 'alpha', 'max_len', 'vocab_size', 'nbest')


@functools.partial(jax.jit, static_argnames=_STATIC)
def _translate(model, params, inputs: Array, limit: Array, *, beam_size: int, alpha: float,
               max_len: int, vocab_size: int | None, nbest: int = 0) -> Array:
  """inputs [B, S] -> best tokens [B, max_len]: encoder once, cross K/V once, then the search."""
  from mqa_repro.model import Transformer
  b = inputs.shape[0]
  mask = inputs != PAD_ID                                            # [B, S]
  encoded = model.apply({'params': params}, inputs, method=Transformer.encode)   # [B, S, D]
  cache = model.apply({'params': params}, b * beam_size, max_len, encoded, mask,
                      method=Transformer.init_cache)
  return _search(model_step(model), params, cache, b, beam_size, max_len, alpha, limit,
                 vocab_size=vocab_size, reorder=model_reorder(model), nbest=nbest)


def decode_lengths(source_lengths: np.ndarray, cap: int, a: float = 1.5, b: int = 10) -> np.ndarray:
  """Per-sentence maximum hypothesis length: floor(a · source length + b), capped at `cap`."""
  return np.minimum(np.floor(a * np.asarray(source_lengths) + b).astype(np.int64), cap)


def capped_lengths(source_lengths: np.ndarray, cap: int, a: float = 1.5, b: int = 10) -> int:
  """How many sentences the position table `cap` allows fewer tokens than a · length + b (the
  caller reports it once per input, not once per batch)."""
  wanted = np.floor(a * np.asarray(source_lengths) + b).astype(np.int64)
  return int((wanted > cap).sum())


def translate_batch(model, params, inputs: np.ndarray, *, beam_size: int = 4, alpha: float = 0.6,
                    max_len_a: float = 1.5, max_len_b: int = 10, vocab_size: int | None = None,
                    length_bucket: int = 8, max_len: int | None = None,
                    decode_dtype: str | None = None, nbest: int = 0) -> Any:
  """Translate inputs [B, S] (PAD-padded source ids, each ending with EOS) -> best tokens [B, T];
  with `nbest` (<= beam_size) the best `nbest` of each sentence and their beam scores,
  (tokens [B, nbest, T], scores [B, nbest]).

  The encoder runs once per batch and each sentence's cross-attention K/V are computed once
  (init_cache); the search runs in one compiled loop (greedy when beam_size == 1). Sentence b may
  produce floor(max_len_a · len_b + max_len_b) tokens (len_b counts the source's EOS), CAPPED at the
  model's position table ``spec.max_length`` (``capped_lengths`` counts those). T is the longest
  limit rounded up to `length_bucket` (fewer recompiles; rows still stop at their own limit), or
  `max_len` when given (a caller decoding many batches pins it, so they share one compiled shape).
  Pass ``vocab_size=tokenizer.vocab_size`` so the model's vocabulary padding is never emitted.
  ``decode_dtype`` (``decode_model``): None = config.decode.dtype as the model carries it
  (``make_model``), 'float32' = batch-independent hypotheses, '' = the model's own dtype.
  """
  model, precision = decode_model(model, decode_dtype)
  spec = model.spec
  inputs = np.asarray(inputs, np.int32)
  if inputs.shape[1] > spec.max_length:
    raise ValueError(f"source length {inputs.shape[1]} exceeds the model's max_length "
                     f"{spec.max_length}: truncate the sources first (decode_cli does)")
  limit = decode_lengths((inputs != PAD_ID).sum(1), spec.max_length, max_len_a, max_len_b)
  if max_len is None:
    max_len = int(min(spec.max_length, _round_up(int(limit.max()), length_bucket)))
  limit = np.minimum(limit, max_len)
  with jax.default_matmul_precision(precision):
    return _fetch(_translate(model, _unbox(params), jnp.asarray(inputs), jnp.asarray(limit),
                             beam_size=beam_size, alpha=float(alpha), max_len=max_len,
                             vocab_size=vocab_size, nbest=nbest))


def _fetch(out):
  """Device arrays -> numpy (a tuple of them for n-best)."""
  return tuple(np.asarray(x) for x in out) if isinstance(out, tuple) else np.asarray(out)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _continue(model, params, prompts: Array, limit: Array, *, beam_size: int, alpha: float,
              max_len: int, vocab_size: int | None, nbest: int = 0) -> Array:
  from mqa_repro.model import Transformer
  b = prompts.shape[0]
  cache = model.apply({'params': params}, b * beam_size, max_len, method=Transformer.init_cache)
  return _search(model_step(model), params, cache, b, beam_size, max_len, alpha, limit, prompts,
                 vocab_size, model_reorder(model), nbest)


def continue_batch(model, params, prompts: np.ndarray, *, max_new_tokens: int = 64,
                   beam_size: int = 1, alpha: float = 0.6, vocab_size: int | None = None,
                   length_bucket: int = 8, max_len: int | None = None,
                   decode_dtype: str | None = None, nbest: int = 0) -> Any:
  """LM: continue prompts [B, P] (PAD-padded ids, no EOS) -> tokens [B, T] = prompt + continuation;
  `nbest` as for translate_batch.

  The prompt is forced token by token inside the same loop (ragged prompts need no left padding);
  each row then generates up to `max_new_tokens` more, capped at ``spec.max_length`` in total.
  Beam scores include the prompt's log-probability (a constant per row, so the ranking is unchanged).
  ``decode_dtype`` as for translate_batch.
  """
  model, precision = decode_model(model, decode_dtype)
  spec = model.spec
  prompts = np.asarray(prompts, np.int32)
  lengths = (prompts != PAD_ID).sum(1)
  if lengths.max(initial=0) >= spec.max_length:
    raise ValueError(f"prompt length {lengths.max()} leaves no room under max_length {spec.max_length}")
  limit = np.minimum(lengths + max_new_tokens, spec.max_length)
  if max_len is None:
    max_len = int(min(spec.max_length, _round_up(int(limit.max()), length_bucket)))
  limit = np.minimum(limit, max_len)
  with jax.default_matmul_precision(precision):
    return _fetch(_continue(model, _unbox(params), jnp.asarray(prompts), jnp.asarray(limit),
                            beam_size=beam_size, alpha=float(alpha), max_len=max_len,
                            vocab_size=vocab_size, nbest=nbest))


def _unbox(params):
  import flax.linen as nn
  return nn.meta.unbox(params)


# --------------------------------------------------------------------------------------------------
# Measuring the beam reorder (module docstring).


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
  """Milliseconds per beam step with each reorder scheme, on a random translate model.

  The model has h = 8 heads of d_k = d_model / 8 (the paper's shape at a smaller d_model) and
  d_ff = 4 · d_model in every row (no equal-parameter widening: rows differ only in attention); the cache
  holds `slots` positions (the loop's max_len) and the search runs exactly `steps` steps (default all
  `slots`): EOS is banned and every row's limit is `steps`, so no scheme stops early. steps < slots
  is the usual case in translation, where max_len is set by the batch's longest source and most
  sentences end well before it. 'none' (no reorder; wrong beams) is the baseline cost of a step.
  """
  from mqa_repro import config as cfg
  from mqa_repro import model as mdl
  steps = steps or slots
  c = cfg.row_config('translate', row, 'tiny')
  m = c.model
  m.d_model, m.qk_dim, m.v_dim = d_model, d_model // 8, d_model // 8
  m.d_ff, m.encoder_layers, m.decoder_layers = 4 * d_model, layers, layers
  m.vocab_size, m.max_length, m.dtype = 1024, max(slots, source_length), dtype
  model = mdl.make_model(c, dropout_rate=0.0, attention_dropout_rate=0.0, relu_dropout_rate=0.0)
  rng = np.random.default_rng(0)
  inputs = jnp.asarray(rng.integers(4, 1000, (sentences, source_length)), jnp.int32)
  params = _unbox(jax.jit(model.init)(jax.random.PRNGKey(0), {'inputs': inputs[:1, :4],
                                                              'targets': inputs[:1, :4]})['params'])
  encoded = jax.jit(functools.partial(model.apply, method=mdl.Transformer.encode))(
      {'params': params}, inputs)
  cache = model.apply({'params': params}, sentences * beam_size, slots, encoded, inputs != PAD_ID,
                      method=mdl.Transformer.init_cache)
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
        return reorder_state(state, perms[i], i + 1 if scheme == 'prefix' else None)
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


if __name__ == '__main__':
  import json
  import sys
  # python -m mqa_repro.decode [row ...]: full-length decodes, then the common early-ending case
  for r in sys.argv[1:] or ['mha', 'mqa']:
    for steps in (None, 48):
      print(json.dumps(reorder_cost(r, steps=steps)), flush=True)
