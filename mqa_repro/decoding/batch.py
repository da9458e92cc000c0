"""Decoding batches of token ids with a Transformer: translate sources, continue LM prompts.

Each call is one jitted program: the encoder once per batch, each sentence's cross-attention K/V once
(kv_cache.for_sources), then the search (greedy when beam_size == 1) in one compiled loop, with the
beam reorder that goes with the model's attention path (decode_impl.beam_reorder).

Determinism. Hypotheses must not depend on how sentences are batched, or BLEU moves with the batch
size. A row's logits come out of matmuls whose kernel and summation order follow the batch shape
(XLA's CPU backend: a block of rows or a matrix-vector product for one row; GPUs: cuBLAS picks by
shape) and whose fusion with neighbouring ops varies between compiled programs. In bfloat16 every
intermediate rounds to 8 significant bits, so those differences reach the logits at the size of the
gaps between a model's top candidates, and near-ties flip. In float32 the same variations move a
logit by about 1e-7 relative, and a flip needs two candidates within that of each other. This is
not bitwise batch invariance (that takes batch-invariant kernels), but it removes the flips seen in
practice. So the decoders run in ``config.decode.dtype``, 'float32' by default (the weights are
float32 already; activations and the cache become float32), traced under matmul precision
'highest' so that GPUs use no TF32 or bf16 passes either; '' keeps the model's dtype (faster,
batch-dependent). See ``decode_model``.

Shape letters: B sentences (or prompts), S source length, P prompt length, T decoded length.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mqa_repro.data.tokenizer import PAD_ID
from mqa_repro.decoding.search import Step, beam_search, greedy_search
from mqa_repro.nn import decode_impl, kv_cache

Array = jax.Array


def decode_model(model, decode_dtype: str | None = None) -> tuple[Any, str | None]:
  """(model to decode with, matmul precision to trace it under) for a decode dtype: None takes
  ``model.spec.decode_dtype`` (config.decode.dtype), '' the model's own dtype. Float32 decodes
  trace under matmul precision 'highest', so no backend swaps in TF32 or bf16 passes."""
  dtype = (model.spec.decode_dtype if decode_dtype is None else decode_dtype) or model.spec.dtype
  if dtype != model.spec.dtype:
    model = model.clone(spec=dataclasses.replace(model.spec, dtype=dtype))
  return model, 'highest' if dtype == 'float32' else None


def model_step(model) -> Step:
  """The searches' view of a Transformer: step(params, cache, tokens) -> (logits, cache)."""
  from mqa_repro.nn.transformer import Transformer

  def step(params, cache, tokens):
    return model.apply({'params': params}, tokens, cache, method=Transformer.step)
  return step


def round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def unbox(params: Any) -> Any:
  import flax.linen as nn
  return nn.meta.unbox(params)


def decode_lengths(source_lengths: np.ndarray, cap: int, a: float = 1.5, b: int = 10) -> np.ndarray:
  """Per-sentence maximum hypothesis length: floor(a · source length + b), capped at `cap`."""
  return np.minimum(np.floor(a * np.asarray(source_lengths) + b).astype(np.int64), cap)


def capped_lengths(source_lengths: np.ndarray, cap: int, a: float = 1.5, b: int = 10) -> int:
  """How many sentences the position table `cap` allows fewer tokens than a · length + b (the
  caller reports it once per input, not once per batch)."""
  wanted = np.floor(a * np.asarray(source_lengths) + b).astype(np.int64)
  return int((wanted > cap).sum())


@functools.partial(jax.jit, static_argnames=('model', 'translate', 'beam_size', 'alpha', 'max_len',
                                             'vocab_size', 'nbest'))
def _decode(model, params, tokens: Array, limit: Array, *, translate: bool, beam_size: int,
            alpha: float, max_len: int, vocab_size: int | None, nbest: int) -> Any:
  """tokens: sources [B, S] (translate) or prompts [B, P] -> best tokens [B, max_len], or with
  `nbest` (tokens [B, nbest, max_len], beam scores [B, nbest])."""
  b = tokens.shape[0]
  cache = kv_cache.for_sources(model, params, tokens if translate else None, b * beam_size, max_len)
  prefix = None if translate else tokens
  step, reorder = model_step(model), decode_impl.beam_reorder(model.spec.attention_impl)
  if nbest:
    out, scores = beam_search(step, params, cache, b, beam_size, max_len, alpha, limit, prefix,
                              vocab_size, reorder=reorder)
    return out[:, :nbest], scores[:, :nbest]
  if beam_size == 1:
    return greedy_search(step, params, cache, b, max_len, limit, prefix, vocab_size)
  return beam_search(step, params, cache, b, beam_size, max_len, alpha, limit, prefix, vocab_size,
                     reorder=reorder)[0][:, 0]


def _run(model, params, tokens: np.ndarray, limit: np.ndarray, precision: str | None, mesh, rules,
         **static: Any) -> Any:
  """The jitted decode on host arrays -> numpy (a tuple for n-best). With a mesh of several devices
  the rows are split over its batch axes, under its logical-axis rules, as in training."""
  args = [unbox(params), jnp.asarray(tokens), jnp.asarray(limit)]
  with jax.default_matmul_precision(precision):
    if mesh is None or mesh.size == 1:
      out = _decode(model, *args, **static)
    else:
      from mqa_repro.training import sharding
      if model.spec.attention_impl != 'xla':
        raise ValueError('the Pallas decode kernels run on one device: decode on a mesh with '
                         "config.model.attention_impl='xla'")
      args[1:] = [jax.device_put(x, sharding.rows_sharding(mesh, rules, x.shape)) for x in args[1:]]
      with sharding.mesh_context(mesh, rules):
        out = _decode(model, *args, **static)
  return tuple(np.asarray(x) for x in out) if isinstance(out, tuple) else np.asarray(out)


def _loop_length(limit: np.ndarray, max_length: int, bucket: int, max_len: int | None) -> int:
  """The search loop's length: the longest limit rounded up to `bucket` (fewer recompiles; rows
  still stop at their own limit), or `max_len` when the caller pins one shape for many batches."""
  return max_len if max_len is not None else int(min(max_length, round_up(int(limit.max()), bucket)))


def translate_batch(model, params, inputs: np.ndarray, *, beam_size: int = 4, alpha: float = 0.6,
                    max_len_a: float = 1.5, max_len_b: int = 10, vocab_size: int | None = None,
                    length_bucket: int = 8, max_len: int | None = None,
                    decode_dtype: str | None = None, nbest: int = 0, mesh=None, rules=()) -> Any:
  """Translate inputs [B, S] (PAD-padded source ids, each ending with EOS) -> best tokens [B, T];
  with `nbest` (<= beam_size) the best `nbest` of each sentence and their beam scores,
  (tokens [B, nbest, T], scores [B, nbest]).

  Sentence b may produce floor(max_len_a · len_b + max_len_b) tokens (len_b counts the source's EOS),
  CAPPED at the model's position table ``spec.max_length`` (``capped_lengths`` counts those). T is
  the loop length (``_loop_length``). Pass ``vocab_size=tokenizer.vocab_size`` so the model's
  vocabulary padding is never emitted. ``decode_dtype`` (``decode_model``): None = config.decode.dtype
  as the model carries it, 'float32' = batch-independent hypotheses, '' = the model's own dtype.
  `mesh` / `rules`: decode sharded over a device mesh (``_run``).
  """
  model, precision = decode_model(model, decode_dtype)
  spec = model.spec
  inputs = np.asarray(inputs, np.int32)
  if inputs.shape[1] > spec.max_length:
    raise ValueError(f"source length {inputs.shape[1]} exceeds the model's max_length "
                     f"{spec.max_length}: truncate the sources first (decoding.text does)")
  limit = decode_lengths((inputs != PAD_ID).sum(1), spec.max_length, max_len_a, max_len_b)
  max_len = _loop_length(limit, spec.max_length, length_bucket, max_len)
  return _run(model, params, inputs, np.minimum(limit, max_len), precision, mesh, rules,
              translate=True, beam_size=beam_size, alpha=float(alpha), max_len=max_len,
              vocab_size=vocab_size, nbest=nbest)


def continue_batch(model, params, prompts: np.ndarray, *, max_new_tokens: int = 64,
                   beam_size: int = 1, alpha: float = 0.6, vocab_size: int | None = None,
                   length_bucket: int = 8, max_len: int | None = None,
                   decode_dtype: str | None = None, nbest: int = 0, mesh=None, rules=()) -> Any:
  """LM: continue prompts [B, P] (PAD-padded ids, no EOS) -> tokens [B, T] = prompt + continuation;
  `nbest`, `decode_dtype`, `mesh` as for translate_batch.

  The prompt is forced token by token inside the same loop (ragged prompts need no left padding);
  each row then generates up to `max_new_tokens` more, capped at ``spec.max_length`` in total.
  Beam scores include the prompt's log-probability (a constant per row, so the ranking is unchanged).
  """
  model, precision = decode_model(model, decode_dtype)
  spec = model.spec
  prompts = np.asarray(prompts, np.int32)
  lengths = (prompts != PAD_ID).sum(1)
  if lengths.max(initial=0) >= spec.max_length:
    raise ValueError(f"prompt length {lengths.max()} leaves no room under max_length {spec.max_length}")
  limit = np.minimum(lengths + max_new_tokens, spec.max_length)
  max_len = _loop_length(limit, spec.max_length, length_bucket, max_len)
  return _run(model, params, prompts, np.minimum(limit, max_len), precision, mesh, rules,
              translate=False, beam_size=beam_size, alpha=float(alpha), max_len=max_len,
              vocab_size=vocab_size, nbest=nbest)
