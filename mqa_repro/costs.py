"""Parameter, FLOP and byte counts of the paper's models, the roofline built on them, and the
datasheet ceilings they are set against: every formula in one place.

`m` below is anything with the model's fields as attributes: ``config.model`` (a ConfigDict) or a
``nn.transformer.ModelSpec``. Shape letters as in nn/attention.py:

  D model dim (d)     F FFN width (d_ff)    N query heads (h)    K key/value heads (g)
  G query heads per kv head (h / g)        H query/key head dim (d_k)    V value head dim (d_v)
  B hypotheses        T target length       S live / memory positions    Y vocabulary

The counts follow the module's einsums, e.g. one decode step of self-attention for B hypotheses
reads K/V of [B, S, K, H] and [B, S, K, V] and does 'BKGH,BSKH->BKGS' and 'BKGS,BSKV->BKGV' (2·B·N·S·H
and 2·B·N·S·V FLOPs). No biases anywhere (the paper's mesh-tensorflow configs); norms are scale-only.
"""

from __future__ import annotations

from typing import Any, Mapping

from mqa_repro import tasks

# --------------------------------------------------------------------------------------------------
# Parameters and the equal-parameter rule.


def attention_weights(m: Any) -> int:
  """Weights of one attention layer: q [D, N, H], k [D, K, H], v [D, K, V], o [N, V, D]."""
  d, n, k = m.d_model, m.num_heads, m.num_kv_heads
  return d * n * m.qk_dim + d * k * m.qk_dim + d * k * m.v_dim + n * m.v_dim * d


def ffn_layers(m: Any, task: str) -> int:
  """Layers holding an FFN of 2·D·F weights (wi [D, F], wo [F, D])."""
  return m.encoder_layers + m.decoder_layers if tasks.get(task).encoder else m.decoder_layers


def param_count(m: Any, task: str) -> int:
  """Exact parameter count of the model `m` describes (tests check it against the Flax model)."""
  d = m.d_model
  attn, ffn = attention_weights(m), 2 * d * m.d_ff
  emb = m.vocab_size * d * (1 if m.share_embeddings else 2)   # [Y, D] (+ the softmax [D, Y])
  if tasks.get(task).encoder:
    enc = m.encoder_layers * (attn + ffn + 2 * d) + d           # 2 norms per layer + final norm
    dec = m.decoder_layers * (2 * attn + ffn + 3 * d) + d       # self + cross attention, 3 norms
    return enc + dec + emb + 2 * m.max_length * d               # learned positions, both sides
  return m.decoder_layers * (attn + ffn + 2 * d) + d + emb + m.max_length * d


def equal_param_d_ff(m: Any, task: str, target: int) -> int:
  """The d_ff at which the model's parameter count equals `target` (the table's baseline count).

  Parameters are linear in d_ff (each FFN holds 2·D·F weights), so solve directly. The paper's rows
  land exactly on integers (5440, 6784, 9088, 9984); anything else rounds to the nearest unit.
  """
  per_unit = 2 * m.d_model * ffn_layers(m, task)
  without_ffn = param_count(m, task) - per_unit * m.d_ff
  return int(round((target - without_ffn) / per_unit))


# --------------------------------------------------------------------------------------------------
# FLOPs of a training step.


def train_flops(m: Any, batch: int, src: int, tgt: int) -> float:
  """Model FLOPs of one training step (3x the forward matmuls and attention), for MFU.

  Forward per layer: 2·B·T·(attention weights + 2·D·F) for the projections and FFN, and
  2·B·N·T·S·(H + V) for 'BTKGH,BSKH->BKGTS' and 'BKGTS,BSKV->BTKGV'; cross-attention projects q and o
  per target token and k, v per source token. Plus 2·B·T·D·Y for the output softmax.
  """
  d, n, k, h, v, f = m.d_model, m.num_heads, m.num_kv_heads, m.qk_dim, m.v_dim, m.d_ff
  attn_w = attention_weights(m)
  fwd = 0.0
  if m.encoder_layers:
    fwd += m.encoder_layers * (2 * batch * src * (attn_w + 2 * d * f)
                               + 2 * batch * n * src * src * (h + v))
    cross = 2 * batch * tgt * (d * n * h + n * v * d) + 2 * batch * src * (d * k * (h + v))
    cross += 2 * batch * n * tgt * src * (h + v)
  else:
    cross = 0.0
  fwd += m.decoder_layers * (2 * batch * tgt * (attn_w + 2 * d * f)
                             + 2 * batch * n * tgt * tgt * (h + v) + cross)
  fwd += 2 * batch * tgt * d * m.vocab_size
  return 3 * fwd


def mfu(flops: float, seconds: float, peak_flops: float, devices: int = 1) -> float:
  """Model FLOPs utilisation: achieved FLOP/s over the devices' combined peak."""
  return flops / seconds / (peak_flops * devices)


# --------------------------------------------------------------------------------------------------
# One incremental decoder step: bytes it must read, FLOPs it does.


def decoder_step_cost(m: Any, hyps: int, sentences: int, source_len: int, live: float,
                      param_bytes: int = 2, cache_bytes: int = 2) -> dict[str, float]:
  """Bytes a decoder step must read and the FLOPs it does, for `hyps` hypotheses of `sentences`
  sentences with `live` self-attention positions each (cross-attention reads all `source_len`).

  Weights read once per step: self-attention q, k, v, o (k, v of the new token), cross-attention q, o
  (the memory's K/V were projected once per sentence), the FFN and the output softmax [D, Y]
  (the embedding and position rows of one token are negligible). K/V: the live self-attention
  positions per hypothesis, all `source_len` memory positions per sentence (a beam's W hypotheses
  share them).
  """
  d, n, k, h, v = m.d_model, m.num_heads, m.num_kv_heads, m.qk_dim, m.v_dim
  layers = m.decoder_layers
  cross_w = (d * n * h + n * v * d) if m.encoder_layers else 0
  matmul_w = layers * (attention_weights(m) + cross_w + 2 * d * m.d_ff) + d * m.vocab_size
  weight_bytes = matmul_w * param_bytes
  self_kv = hyps * live * k * (h + v) * cache_bytes * layers
  cross_kv = (sentences * source_len * k * (h + v) * cache_bytes * layers) if m.encoder_layers else 0
  dense_flops = 2 * hyps * matmul_w
  attention_flops = 2 * hyps * n * live * (h + v) * layers
  if m.encoder_layers:
    attention_flops += 2 * hyps * n * source_len * (h + v) * layers
  return {'bytes': weight_bytes + self_kv + cross_kv, 'weight_bytes': weight_bytes,
          'self_kv_bytes': self_kv, 'cross_kv_bytes': cross_kv, 'flops': dense_flops + attention_flops,
          'dense_flops': dense_flops, 'attention_flops': attention_flops}


def mean_live(window: int | None, steps: int, start: int = 0) -> float:
  """Live self-attention positions averaged over `steps` steps after `start` written positions:
  step t reads min(start + t + 1, window)."""
  return sum(min(start + t + 1, window or start + t + 1) for t in range(steps)) / steps


def paper_ratio(m: Any, batch: int, n: int) -> dict[str, float]:
  """Section 3's memory/arithmetic ratios for incremental decoding, with m = n (constants dropped)."""
  d, h = m.d_model, m.num_heads
  return {'multi_head': n / d + 1 / batch, 'multi_query': 1 / d + n / (d * h) + 1 / batch}


# --------------------------------------------------------------------------------------------------
# The roofline and its ceilings.


def ceilings(hw: Mapping[str, Any]) -> tuple[float, float]:
  """(bytes/s, FLOP/s) a roofline divides by: the hardware record's ceilings (the higher of measured
  and datasheet, bench.ceilings), or its measured figures in records written before those existed."""
  bw = hw.get('ceiling_GBps') or hw['copy_GBps']
  peak = hw.get('ceiling_TFLOPs') or hw['matmul_TFLOPs']
  return bw * 1e9, peak * 1e12


def roofline(cost: Mapping[str, float], hw: Mapping[str, Any]) -> dict[str, float]:
  """max(bytes / bandwidth, FLOPs / peak) for the whole step, and the 'sequential' bound: the dense
  matmuls (weights) and attention (K/V) run as separate kernels one after the other, each at best at
  its own roofline, so their times add instead of overlapping."""
  bw, peak = ceilings(hw)
  t_mem, t_math = cost['bytes'] / bw, cost['flops'] / peak
  kv = cost['self_kv_bytes'] + cost['cross_kv_bytes']
  sequential = (max(cost['weight_bytes'] / bw, cost['dense_flops'] / peak)
                + max(kv / bw, cost['attention_flops'] / peak))
  return {'seconds': max(t_mem, t_math), 'bound': 'memory' if t_mem >= t_math else 'compute',
          'memory_seconds': t_mem, 'compute_seconds': t_math, 'sequential_seconds': sequential}


# Vendor datasheets, per device: HBM bandwidth (GB/s) and dense bf16 matmul rate (TFLOP/s, no
# sparsity). Matched as substrings of jax's device_kind, most specific first (a PCIe H100 is slower
# than an SXM one).
DATASHEETS = (
    ('H200 NVL', 4800, 835),
    ('H200', 4800, 989),          # SXM
    ('H100 PCIe', 2000, 756),
    ('H100 NVL', 3900, 835),
    ('H100', 3350, 989),          # SXM
    ('A100-SXM4-80GB', 2039, 312),
    ('A100', 1555, 312),          # 40 GB
)
# MFU's peak per jax device (training/trainer.py): a TPU v2/v3 chip shows up as two devices, one
# per core.
PEAK_BF16_FLOPS = {'H100': 989e12, 'H200': 989e12, 'A100': 312e12, 'TPU v3': 61.5e12,
                   'TPU v4': 137.5e12, 'TPU v5 lite': 197e12, 'TPU v5p': 229.5e12,
                   'TPU v6 lite': 918e12}


def datasheet(device_kind: str) -> dict[str, Any] | None:
  """{'name', 'hbm_GBps', 'bf16_TFLOPs'} of the first DATASHEETS entry in `device_kind`, or None."""
  kind = device_kind.lower()
  for name, gbps, tflops in DATASHEETS:
    if name.lower() in kind:
      return {'name': name, 'hbm_GBps': gbps, 'bf16_TFLOPs': tflops}
  return None


def peak_flops(device_kind: str) -> float | None:
  """Dense bf16 FLOP/s of one jax device of this kind (PEAK_BF16_FLOPS), or None."""
  kind = device_kind.lower()
  return next((f for name, f in PEAK_BF16_FLOPS.items() if name.lower() in kind), None)
