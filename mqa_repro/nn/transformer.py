"""The paper's two models from one set of blocks: the WMT encoder-decoder and the lm1b decoder-only LM.

Pre-norm Transformer with scale-only RMS norms and a final norm, learned positions, ReLU FFN, no biases
(the paper's mesh-tensorflow configs). ``encoder_layers == 0`` gives the decoder-only LM.

Shape letters as in attention.py: B batch, S source length, T target length, D model dim, F FFN width,
Y vocabulary (the output classes; V is the value head dim).

Two paths through one set of parameters: the parallel path for training and scoring (``__call__``,
``encode`` + ``decode``), and the incremental one: a cache (kv_cache.py: ``kv_cache.for_sources``
builds it from ``init_state`` and, once per source sentence, ``init_memory`` of the encoder output),
then ``step`` per token.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mqa_repro import tasks
from mqa_repro.data.tokenizer import BOS_ID, PAD_ID
from mqa_repro.nn import kv_cache
from mqa_repro.nn.attention import Attention

Array = jax.Array
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Hashable copy of ``config.model`` (Flax module attributes must be hashable)."""
  vocab_size: int
  d_model: int
  d_ff: int
  num_heads: int
  num_kv_heads: int
  qk_dim: int
  v_dim: int
  window: int | None
  encoder_layers: int
  decoder_layers: int
  max_length: int
  share_embeddings: bool
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  relu_dropout_rate: float = 0.0
  norm_eps: float = 1e-6
  dtype: str = 'float32'
  param_dtype: str = 'float32'
  attention_impl: str = 'xla'   # decode steps: 'xla' | 'pallas' | 'pallas_all' (decode_impl.IMPLS)
  train_attention_impl: str = 'xla'   # the parallel path: 'xla' | 'pallas' (attention.TRAIN_IMPLS)
  # The dtype translate_batch / continue_batch run the model in (config.decode.dtype); '' = dtype.
  # Training and scoring never read it (decoding.batch.decode_model).
  decode_dtype: str = ''

  @classmethod
  def from_config(cls, m: ml_collections.ConfigDict, **overrides: Any) -> 'ModelSpec':
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in m.to_dict().items() if k in names}
    values.update(overrides)
    return cls(**values)

  @property
  def compute_dtype(self):
    return DTYPES[self.dtype]

  @property
  def params_dtype(self):
    return DTYPES[self.param_dtype]


def shift_right(targets: Array, segmentation: Array | None = None) -> Array:
  """Decoder inputs: BOS then the targets shifted by one, restarting at every packed example."""
  shifted = jnp.pad(targets, ((0, 0), (1, 0)), constant_values=BOS_ID)[:, :-1]
  if segmentation is None:
    return shifted
  starts = segmentation != jnp.pad(segmentation, ((0, 0), (1, 0)))[:, :-1]
  shifted = jnp.where(starts, BOS_ID, shifted)
  return jnp.where(segmentation > 0, shifted, PAD_ID)


def segment_mask(q_seg: Array, k_seg: Array) -> Array:
  """[B, T, S]: True where query and key belong to the same (non-padding) example."""
  return (q_seg[:, :, None] == k_seg[:, None, :]) & (q_seg[:, :, None] > 0) & (k_seg[:, None, :] > 0)


class RMSNorm(nn.Module):
  """Scale-only RMS norm (no bias, no mean subtraction), computed in float32."""
  eps: float = 1e-6
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    scale = self.param('scale', nn.with_logical_partitioning(nn.initializers.ones, ('norm',)),
                       (x.shape[-1],), jnp.float32)
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (y * scale).astype(self.dtype)


class Mlp(nn.Module):
  """ReLU FFN: x [B, T, D] -> [B, T, F] -> [B, T, D]."""
  d_model: int
  d_ff: int
  dropout_rate: float
  dtype: Any
  param_dtype: Any

  @nn.compact
  def __call__(self, x: Array, deterministic: bool) -> Array:
    part = nn.with_logical_partitioning
    wi = self.param('wi', part(nn.initializers.normal(self.d_model ** -0.5), ('embed', 'mlp')),
                    (self.d_model, self.d_ff), self.param_dtype)
    wo = self.param('wo', part(nn.initializers.normal(self.d_ff ** -0.5), ('mlp', 'embed')),
                    (self.d_ff, self.d_model), self.param_dtype)
    h = jax.nn.relu(jnp.einsum('BTD,DF->BTF', x, wi.astype(self.dtype)))
    h = nn.with_logical_constraint(h, ('batch', 'length', 'mlp'))
    h = nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
    return jnp.einsum('BTF,FD->BTD', h, wo.astype(self.dtype))


class Layer(nn.Module):
  """One pre-norm layer: self-attention, optional cross-attention, FFN; each adds to the residual."""
  spec: ModelSpec
  causal: bool
  cross: bool

  def setup(self):
    s, dt = self.spec, self.spec.compute_dtype
    common = dict(d_model=s.d_model, num_heads=s.num_heads, num_kv_heads=s.num_kv_heads,
                  qk_dim=s.qk_dim, v_dim=s.v_dim, dropout_rate=s.attention_dropout_rate, dtype=dt,
                  param_dtype=s.params_dtype, impl=s.attention_impl,
                  train_impl=s.train_attention_impl)
    # Local attention applies to decoder self-attention only (the paper's "local" rows).
    self.self_attn = Attention(causal=self.causal, window=s.window if self.causal else None, **common)
    self.norm_self = RMSNorm(s.norm_eps, dt)
    if self.cross:
      self.cross_attn = Attention(**common)
      self.norm_cross = RMSNorm(s.norm_eps, dt)
    self.mlp = Mlp(s.d_model, s.d_ff, s.relu_dropout_rate, dt, s.params_dtype)
    self.norm_mlp = RMSNorm(s.norm_eps, dt)
    self.drop = nn.Dropout(s.dropout_rate)

  def _residual(self, x: Array, y: Array, deterministic: bool) -> Array:
    x = x + self.drop(y, deterministic=deterministic)
    return nn.with_logical_constraint(x, ('batch', 'length', 'embed'))

  def __call__(self, x, self_mask, memory=None, cross_mask=None, *, deterministic=True):
    x = self._residual(x, self.self_attn(self.norm_self(x), mask=self_mask,
                                         deterministic=deterministic), deterministic)
    if self.cross:
      x = self._residual(x, self.cross_attn(self.norm_cross(x), memory, cross_mask,
                                            deterministic=deterministic), deterministic)
    return self._residual(x, self.mlp(self.norm_mlp(x), deterministic), deterministic)

  def step(self, x: Array, state: dict, memory: dict | None, position: Array) -> tuple[Array, dict]:
    y, state = self.self_attn.decode_self(self.norm_self(x), state, position)
    x = x + y
    if self.cross:
      x = x + self.cross_attn.decode_cross(self.norm_cross(x), memory)
    return x + self.mlp(self.norm_mlp(x), True), state


class Transformer(nn.Module):
  """Encoder-decoder (``encoder_layers > 0``) or decoder-only LM (``encoder_layers == 0``)."""
  spec: ModelSpec

  def setup(self):
    s, dt = self.spec, self.spec.compute_dtype
    part = nn.with_logical_partitioning
    self.embed = self.param('embedding', part(nn.initializers.normal(1.0), ('vocab', 'embed')),
                            (s.vocab_size, s.d_model), s.params_dtype)          # [Y, D]
    if not s.share_embeddings:
      self.softmax = self.param('softmax', part(nn.initializers.normal(s.d_model ** -0.5),
                                                ('embed', 'vocab')), (s.d_model, s.vocab_size),
                                s.params_dtype)                                   # [D, Y]
    pos_init = part(nn.initializers.normal(s.d_model ** -0.5), ('positions', 'embed'))
    if s.encoder_layers:
      self.encoder_positions = self.param('encoder_positions', pos_init, (s.max_length, s.d_model),
                                          s.params_dtype)
      self.encoder = [Layer(s, causal=False, cross=False, name=f'encoder_{i}')
                      for i in range(s.encoder_layers)]
      self.encoder_norm = RMSNorm(s.norm_eps, dt)
    self.decoder_positions = self.param('decoder_positions', pos_init, (s.max_length, s.d_model),
                                        s.params_dtype)
    self.decoder = [Layer(s, causal=True, cross=bool(s.encoder_layers), name=f'decoder_{i}')
                    for i in range(s.decoder_layers)]
    self.decoder_norm = RMSNorm(s.norm_eps, dt)
    self.drop = nn.Dropout(s.dropout_rate)

  # --- pieces ------------------------------------------------------------------------------------

  def _embed(self, tokens: Array, positions: Array, table: Array, deterministic: bool) -> Array:
    dt = self.spec.compute_dtype
    x = jnp.take(self.embed, tokens, axis=0).astype(dt) + jnp.take(table, positions, axis=0).astype(dt)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))
    return self.drop(x, deterministic=deterministic)

  def _logits(self, x: Array) -> Array:
    """x [B, T, D] -> float32 logits [B, T, Y]. A shared table is scaled by d^-0.5 as in mtf."""
    s, dt = self.spec, self.spec.compute_dtype
    x = self.decoder_norm(x)
    if s.share_embeddings:
      logits = jnp.einsum('BTD,YD->BTY', x * jnp.asarray(s.d_model ** -0.5, dt), self.embed.astype(dt))
    else:
      logits = jnp.einsum('BTD,DY->BTY', x, self.softmax.astype(dt))
    return nn.with_logical_constraint(logits.astype(jnp.float32), ('batch', 'length', 'vocab'))

  @staticmethod
  def _positions(tokens: Array, positions: Array | None) -> Array:
    if positions is not None:
      return positions
    return jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)

  # --- parallel path -----------------------------------------------------------------------------

  def encode(self, inputs: Array, inputs_segmentation: Array | None = None,
             inputs_position: Array | None = None, *, deterministic: bool = True) -> Array:
    """inputs [B, S] -> encoder output [B, S, D]."""
    seg = inputs_segmentation if inputs_segmentation is not None else (inputs != PAD_ID).astype(jnp.int32)
    x = self._embed(inputs, self._positions(inputs, inputs_position), self.encoder_positions,
                    deterministic)
    mask = segment_mask(seg, seg)
    for layer in self.encoder:
      x = layer(x, mask, deterministic=deterministic)
    return self.encoder_norm(x)

  def decode(self, targets: Array, targets_segmentation: Array | None = None,
             targets_position: Array | None = None, encoded: Array | None = None,
             inputs_segmentation: Array | None = None, *, deterministic: bool = True) -> Array:
    """Teacher-forced decoder: targets [B, T] (shifted right here) -> logits [B, T, Y]."""
    seg = (targets_segmentation if targets_segmentation is not None
           else jnp.ones_like(targets, dtype=jnp.int32))
    x = self._embed(shift_right(targets, targets_segmentation),
                    self._positions(targets, targets_position), self.decoder_positions, deterministic)
    self_mask = segment_mask(seg, seg)
    cross_mask = None if encoded is None else segment_mask(seg, inputs_segmentation)
    for layer in self.decoder:
      x = layer(x, self_mask, encoded, cross_mask, deterministic=deterministic)
    return self._logits(x)

  def __call__(self, batch: dict[str, Array], *, deterministic: bool = True) -> Array:
    """Logits [B, T, Y] for a (packed) batch dict as the data pipeline produces it."""
    encoded, in_seg = None, None
    if self.spec.encoder_layers:
      in_seg = batch.get('inputs_segmentation')
      if in_seg is None:
        in_seg = (batch['inputs'] != PAD_ID).astype(jnp.int32)
      encoded = self.encode(batch['inputs'], in_seg, batch.get('inputs_position'),
                            deterministic=deterministic)
    return self.decode(batch['targets'], batch.get('targets_segmentation'),
                       batch.get('targets_position'), encoded, in_seg, deterministic=deterministic)

  # --- incremental path --------------------------------------------------------------------------

  def init_state(self, batch: int, length: int) -> list[dict]:
    """Empty self-attention state of every decoder layer: `batch` hypotheses, `length` positions."""
    return [layer.self_attn.init_self_cache(batch, length) for layer in self.decoder]

  def init_memory(self, encoded: Array, encoder_mask: Array) -> list[dict]:
    """Every decoder layer's cross-attention K/V of encoded [B_src, S, D], computed ONCE per sentence
    (a beam's W hypotheses share it: never tiled, broadcast in the einsum)."""
    return [layer.cross_attn.init_cross_cache(encoded, encoder_mask) for layer in self.decoder]

  def init_cache(self, batch: int, length: int, encoded: Array | None = None,
                 encoder_mask: Array | None = None) -> dict:
    """The decode cache (kv_cache.py) for `batch` hypotheses and `length` positions."""
    memory = self.init_memory(encoded, encoder_mask) if self.spec.encoder_layers else None
    return kv_cache.make(self.init_state(batch, length), memory)

  def step(self, tokens: Array, cache: dict) -> tuple[Array, dict]:
    """Feed tokens [B, T] at the next T positions; returns (float32 logits [B, T, Y], new cache)."""
    position = cache['position']
    dt = self.spec.compute_dtype
    x = (jnp.take(self.embed, tokens, axis=0).astype(dt)
         + jnp.take(self.decoder_positions, position + jnp.arange(tokens.shape[1]), axis=0).astype(dt)[None])
    memory = cache['memory'] or [None] * len(self.decoder)
    state = []
    for layer, layer_state, layer_memory in zip(self.decoder, cache['state'], memory):
      x, layer_state = layer.step(x, layer_state, layer_memory, position)
      state.append(layer_state)
    return self._logits(x), kv_cache.make(state, cache['memory'], position + tokens.shape[1])


# --------------------------------------------------------------------------------------------------
# Helpers around the module.


def make_model(config: ml_collections.ConfigDict, **overrides: Any) -> Transformer:
  """The model of ``config.model``, carrying ``config.decode.dtype`` for the decoders ('float32'
  where a run's saved config predates that field: its default)."""
  if 'decode' in config:
    overrides.setdefault('decode_dtype', config.decode.get('dtype', 'float32'))
  return Transformer(ModelSpec.from_config(config.model, **overrides))


def dummy_batch(task: str, batch: int = 2, length: int = 8) -> dict[str, np.ndarray]:
  """A batch of the task's keys (one token, segment and position array per side), all ones."""
  tokens = np.ones((batch, length), np.int32)
  positions = np.broadcast_to(np.arange(length, dtype=np.int32), (batch, length)).copy()
  out = {}
  for side in reversed(tasks.get(task).sides):
    out.update({side: tokens, f'{side}_segmentation': tokens, f'{side}_position': positions})
  return out


def abstract_params(model: Transformer, task: str) -> Any:
  """Parameter shapes (with logical-axis metadata) without allocating anything."""
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), dummy_batch(task, 1, 4)))['params']


def count_params(params: Any) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(nn.meta.unbox(params))))


def param_shapes(params: Any) -> dict[str, list[int]]:
  """{'decoder_0/self_attn/key': [D, K, H], ...} for golden files and model-info dumps."""
  flat = jax.tree_util.tree_flatten_with_path(nn.meta.unbox(params))[0]
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): list(x.shape) for path, x in flat}



def convert_kv_heads(params: Any, num_kv_heads: int) -> Any:
  """Multi-head -> grouped/multi-query checkpoint by mean-pooling each group's K/V heads.

  This is the GQA paper's conversion (Ainslie et al. 2023) before "uptraining". Query head n belongs
  to kv head n // G, matching the [K, G] grouping in attention.py, so groups are contiguous heads.
  """
  def pool(path, x):
    name = getattr(path[-1], 'key', None)
    if name not in ('key', 'value'):
      return x
    d, k, h = x.shape
    if k % num_kv_heads:
      raise ValueError(f"cannot pool {k} kv heads into {num_kv_heads} groups: not divisible")
    return x.reshape(d, num_kv_heads, k // num_kv_heads, h).mean(axis=2)
  return jax.tree_util.tree_map_with_path(pool, nn.meta.unbox(params))
