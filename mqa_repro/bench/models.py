"""The model pieces under test: bf16 inference specs of the table rows, random parameters, the step
with EOS masked, and decode caches built inside the timed graph.

Shape letters as in nn/attention.py: B hypotheses, S source length, L cache slots.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from mqa_repro import config as cfg
from mqa_repro.data.tokenizer import EOS_ID
from mqa_repro.decoding.batch import model_step
from mqa_repro.nn import kv_cache
from mqa_repro.nn import transformer as mdl


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
  step = model_step(model)

  def masked(params, cache, tokens):
    logits, cache = step(params, cache, tokens)
    return logits.at[..., EOS_ID].set(-1e9), cache
  return masked


def encode_memory(model, params, inputs) -> Any:
  """Encoder + cross-attention K/V: everything done once per source sentence."""
  return kv_cache.memory(model, params, inputs)


def empty_cache(model, params, memory, hyps: int, slots: int, position: int = 0) -> dict:
  """A decode cache of `slots` self-attention slots around a precomputed memory, built in-graph
  (zero-filling is part of decoding), with `position` positions marked as already written."""
  return kv_cache.make(kv_cache.empty_state_like(model, params, hyps, slots), memory, position)
