"""The model pieces under test: bf16 inference specs of the table rows, random parameters, the step
with EOS masked, and decode caches built inside the timed graph.

Shape letters as in model.py: B hypotheses, S source length, L cache slots.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from mqa_repro import config as cfg
from mqa_repro import decode as decode_lib
from mqa_repro import model as mdl
from mqa_repro.data.tokenizer import EOS_ID


def bench_spec(variant: str, size: str, task: str = 'translate', attention_impl: str = 'xla',
               **overrides) -> mdl.ModelSpec:
  """Row `variant` of `task`'s table at `size`, in bf16 weights and activations, without dropout."""
  c = cfg.row_config(task, variant, size)
  return mdl.ModelSpec.from_config(c.model, dtype='bfloat16', param_dtype='bfloat16', dropout_rate=0.0,
                                   attention_dropout_rate=0.0, relu_dropout_rate=0.0,
                                   attention_impl=attention_impl, **overrides)


def init_params(model: mdl.Transformer, src: int, tgt: int) -> Any:
  """Random parameters (the model's own initializers); src = 0 for a decoder-only LM."""
  batch = {'targets': jnp.ones((1, tgt), jnp.int32)}
  if src:
    batch['inputs'] = jnp.ones((1, src), jnp.int32)
  return jax.jit(lambda r: mdl.nn.meta.unbox(model.init(r, batch)['params']))(jax.random.PRNGKey(0))


def no_eos_step(model: mdl.Transformer) -> Callable:
  """The model's step with EOS masked, so every sequence decodes the full fixed length."""
  step = decode_lib.model_step(model)

  def masked(params, cache, tokens):
    logits, cache = step(params, cache, tokens)
    return logits.at[..., EOS_ID].set(-1e9), cache
  return masked


def encode_memory(model, params, inputs) -> Any:
  """Encoder + cross-attention K/V: everything done once per source sentence."""
  encoded = model.apply({'params': params}, inputs, method=mdl.Transformer.encode)
  return model.apply({'params': params}, inputs.shape[0], 1, encoded, inputs != 0,
                     method=mdl.Transformer.init_cache)['memory']


def empty_cache(model, params, memory, inputs, hyps: int, slots: int, index: int = 0) -> dict:
  """A decode cache of `slots` self-attention slots around a precomputed memory, built in-graph
  (zero-filling is part of decoding), with `index` positions marked as already written."""
  shapes = jax.eval_shape(lambda p, x: model.apply(
      {'params': p}, hyps, slots, model.apply({'params': p}, x, method=mdl.Transformer.encode),
      x != 0, method=mdl.Transformer.init_cache)['state'], params, inputs)
  state = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
  for layer in state:
    layer['index'] = jnp.asarray(index, jnp.int32)
  return {'state': state, 'memory': memory, 'position': jnp.asarray(index, jnp.int32)}
