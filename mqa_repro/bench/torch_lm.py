"""Our decoder-only LM written in PyTorch, for the LM decoding benchmark's compiled-PyTorch peer.

The same computation as nn/transformer.py's ``Transformer.step`` with ``encoder_layers == 0`` (pre-norm,
scale-only RMS norms computed in float32, learned positions, ReLU FFN, no biases, an unshared output
softmax), on a static K/V cache, with ``torch.nn.functional.scaled_dot_product_attention``. It loads
our parameters (``load_jax_params``), so at float32 it decodes the same greedy tokens as the JAX model
(tests/test_lm_decode.py): what makes it a like-for-like peer. Imported only when torch is.

Shape letters as in nn/attention.py: B batch, S cache slots (= new tokens), D model dim, F FFN
width, N query heads, K kv heads, G = N / K, H query/key head dim, V value head dim, Y vocabulary,
P positions. The G query heads of a kv head are SDPA's query rows, so grouped and multi-query
attention read their K [B, K, S, H] and V [B, K, S, V] once, never repeated up to N heads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mqa_repro.data.tokenizer import BOS_ID, EOS_ID, PAD_ID


def _mark_static(t: torch.Tensor) -> None:
  """Tell torch.compile that `t` keeps its address (CUDA graphs may then mutate it in place)."""
  mark = getattr(getattr(torch, '_dynamo', None), 'mark_static_address', None)
  if mark is not None:
    mark(t)


class RMSNorm(nn.Module):
  def __init__(self, d: int, eps: float):
    super().__init__()
    self.scale, self.eps = nn.Parameter(torch.ones(d)), eps

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x32 = x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
    return (y * self.scale.float()).to(x.dtype)


class Layer(nn.Module):
  """Self-attention and FFN of one decoder layer; weights in our [D, N·H] / [N·V, D] layouts."""

  def __init__(self, m: Any):
    super().__init__()
    d, n, k, h, v = m.d_model, m.num_heads, m.num_kv_heads, m.qk_dim, m.v_dim
    self.n, self.k, self.h, self.v = n, k, h, v
    self.norm_self, self.norm_mlp = RMSNorm(d, m.norm_eps), RMSNorm(d, m.norm_eps)
    self.query = nn.Parameter(torch.empty(d, n * h))
    self.key = nn.Parameter(torch.empty(d, k * h))
    self.value = nn.Parameter(torch.empty(d, k * v))
    self.out = nn.Parameter(torch.empty(n * v, d))
    self.wi = nn.Parameter(torch.empty(d, m.d_ff))
    self.wo = nn.Parameter(torch.empty(m.d_ff, d))
    self.k_cache: torch.Tensor | None = None
    self.v_cache: torch.Tensor | None = None

  def forward(self, x: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x [B, D] at position pos [1]; mask [1, 1, 1, S] (slots <= pos)."""
    b, k, g = x.shape[0], self.k, self.n // self.k
    y = self.norm_self(x)
    q = (y @ self.query).view(b, k, g, self.h) * self.h ** -0.5          # [B, K, G, H]
    self.k_cache.index_copy_(2, pos, (y @ self.key).view(b, k, 1, self.h))    # [B, K, S, H]
    self.v_cache.index_copy_(2, pos, (y @ self.value).view(b, k, 1, self.v))  # [B, K, S, V]
    o = F.scaled_dot_product_attention(q, self.k_cache, self.v_cache, attn_mask=mask, scale=1.0)
    x = x + o.reshape(b, self.n * self.v) @ self.out                       # [B, K, G, V] -> [B, D]
    return x + torch.relu(self.norm_mlp(x) @ self.wi) @ self.wo


class TorchLM(nn.Module):
  """`m`: the model's dimensions (a ModelSpec). ``setup(batch, slots)`` allocates the static cache;
  each ``step(tokens [B])`` feeds the tokens at the next position and returns the greedy choice [B]
  (PAD, BOS and EOS never chosen: every row decodes all `slots` steps), also written to ``out``."""

  def __init__(self, m: Any):
    super().__init__()
    self.embedding = nn.Parameter(torch.empty(m.vocab_size, m.d_model))     # [Y, D]
    self.positions = nn.Parameter(torch.empty(m.max_length, m.d_model))     # [P, D]
    self.layers = nn.ModuleList(Layer(m) for _ in range(m.decoder_layers))
    self.norm = RMSNorm(m.d_model, m.norm_eps)
    self.softmax = nn.Parameter(torch.empty(m.d_model, m.vocab_size))       # [D, Y]
    banned = torch.zeros(m.vocab_size, dtype=torch.bool)
    banned[[PAD_ID, BOS_ID, EOS_ID]] = True
    self.register_buffer('banned', banned, persistent=False)
    self.pos: torch.Tensor | None = None
    self.out: torch.Tensor | None = None

  def setup(self, batch: int, slots: int) -> None:
    """Zeroed K/V caches of `slots` slots for `batch` rows, position 0, an empty output."""
    p = self.embedding
    for layer in self.layers:
      layer.k_cache = torch.zeros(batch, layer.k, slots, layer.h, device=p.device, dtype=p.dtype)
      layer.v_cache = torch.zeros(batch, layer.k, slots, layer.v, device=p.device, dtype=p.dtype)
      _mark_static(layer.k_cache)
      _mark_static(layer.v_cache)
    self.pos = torch.zeros(1, dtype=torch.long, device=p.device)
    self.out = torch.full((batch, slots), PAD_ID, dtype=torch.long, device=p.device)
    for t in (self.pos, self.out):
      _mark_static(t)

  def reset(self) -> None:
    """Back to position 0 (stale slots past the position are masked, so they need no zeroing)."""
    self.pos.zero_()

  def logits(self, tokens: torch.Tensor) -> torch.Tensor:
    """tokens [B] at position ``pos`` -> float32 logits [B, Y]; advances the cache, not ``pos``."""
    x = self.embedding[tokens] + self.positions[self.pos]                    # [B, D]
    slots = self.layers[0].k_cache.shape[2]
    mask = (torch.arange(slots, device=x.device) <= self.pos).view(1, 1, 1, slots)   # [S]
    for layer in self.layers:
      x = layer(x, self.pos, mask)
    return (self.norm(x) @ self.softmax).float()

  def step(self, tokens: torch.Tensor) -> torch.Tensor:
    token = self.logits(tokens).masked_fill(self.banned, float('-inf')).argmax(-1)   # [B]
    self.out.index_copy_(1, self.pos, token[:, None])
    self.pos.add_(1)
    return token


def greedy(model: TorchLM, step, batch: int) -> torch.Tensor:
  """Decode every slot greedily from BOS with `step` (model.step, or a compiled one): tokens [B, S].

  The token is cloned out of the step's output as gpt-fast does: with CUDA graphs that output lives
  in the graph's memory pool, which the next replay reuses."""
  model.reset()
  token = torch.full((batch,), BOS_ID, dtype=torch.long, device=model.embedding.device)
  for _ in range(model.out.shape[1]):
    token = step(token).clone()
  return model.out


def load_jax_params(model: TorchLM, params: Any) -> TorchLM:
  """Copy our Flax LM parameters (a decoder-only ``Transformer``'s unboxed tree) into `model`,
  flattening [D, N, H] -> [D, N·H] and [N, V, D] -> [N·V, D]; values keep the model's dtype."""
  def put(dst: torch.Tensor, src) -> None:
    with torch.no_grad():
      dst.copy_(torch.from_numpy(np.array(src, np.float32).reshape(dst.shape)))

  put(model.embedding, params['embedding'])
  put(model.positions, params['decoder_positions'][:model.positions.shape[0]])
  put(model.softmax, params['softmax'])
  put(model.norm.scale, params['decoder_norm']['scale'])
  for i, layer in enumerate(model.layers):
    p = params[f'decoder_{i}']
    for name in ('query', 'key', 'value', 'out'):
      put(getattr(layer, name), p['self_attn'][name])
    put(layer.wi, p['mlp']['wi'])
    put(layer.wo, p['mlp']['wo'])
    put(layer.norm_self.scale, p['norm_self']['scale'])
    put(layer.norm_mlp.scale, p['norm_mlp']['scale'])
  return model
