"""Perplexity of a model on an eval split: ln(PPL) per subword (Table 1's unit) for both tasks, and
perplexity per WORD (Table 3's: total log-loss over the word count) for the LM. It covers the
examples the data layer's ``eval_batches`` yields (those that fit max_length).

Shape letters: B batch rows, T target length, Y vocabulary.
"""

from __future__ import annotations

import functools
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from mqa_repro import tasks
from mqa_repro.report.records import Perplexity
from mqa_repro.training import losses

Array = jax.Array


@functools.partial(jax.jit, static_argnums=0)
def _batch_nll(model, params: Any, batch: dict[str, Array]) -> tuple[Array, Array]:
  """Summed NLL of the real target tokens of one (packed) batch, and their count."""
  logits = model.apply({'params': params}, batch)                       # [B, T, Y] float32
  weights = losses.weights_of(batch['targets'])                         # [B, T]
  return jnp.sum(losses.token_nll(logits, batch['targets']) * weights), jnp.sum(weights)


def score(model, params: Any, batches: Iterable[dict[str, np.ndarray]], mesh=None,
          rules=()) -> dict[str, float]:
  """Total NLL (nats) and token count of `batches` under the model: {'nll_sum', 'tokens'}.

  One jitted function per batch shape (eval batches all share one); sums accumulate in float64 on
  the host so a long dev set does not lose precision. With a mesh of several devices each batch's
  rows are split over its batch axes under its logical-axis rules, as in training.
  """
  import flax.linen as nn
  params = nn.meta.unbox(params)
  sharded = mesh is not None and mesh.size > 1
  if sharded:
    from mqa_repro.training import sharding
  nll_sum, tokens = 0.0, 0.0
  for batch in batches:
    if sharded:
      batch = {k: jax.device_put(v, sharding.rows_sharding(mesh, rules, v.shape))
               for k, v in batch.items()}
      with sharding.mesh_context(mesh, rules):
        n, w = _batch_nll(model, params, batch)
    else:
      n, w = _batch_nll(model, params, {k: jnp.asarray(v) for k, v in batch.items()})
    nll_sum += float(n)
    tokens += float(w)
  return {'nll_sum': nll_sum, 'tokens': tokens}


def perplexity(config, params: Any, data, split: str = 'dev', batch_size: int | None = None,
               mesh=None) -> Perplexity:
  """ln(PPL) per subword (both tasks) and perplexity per word (lm) of a model on `data`'s split,
  on one device or sharded over `mesh` (the config's logical-axis rules).

  `data` is the data layer's ``TaskData`` (anything with ``eval_batches(split, batch_size)`` and, for
  lm, ``word_count(split)``).
  """
  from mqa_repro.nn.transformer import make_model
  model = make_model(config, dropout_rate=0.0, attention_dropout_rate=0.0, relu_dropout_rate=0.0)
  rules = ()
  if mesh is not None and mesh.size > 1:
    from mqa_repro.training import sharding
    rules = sharding.resolve_rules(config, mesh, log=lambda m: None)
  s = score(model, params, data.eval_batches(split, batch_size), mesh, rules)
  out: Perplexity = {'split': split, 'nll_sum': s['nll_sum'], 'tokens': int(s['tokens']),
                     'ln_ppl_per_subword': losses.log_ppl(s['nll_sum'], s['tokens'])}
  if tasks.get(config.task).word_perplexity:
    words = data.word_count(split)
    out.update(words=int(words), word_perplexity=losses.word_perplexity(s['nll_sum'], words))
  return out
