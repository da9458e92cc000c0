"""Losses and perplexities shared by training and evaluation (pure functions of logits and counts).

Shape letters: B batch, T target length, Y vocabulary (as everywhere; V is the value head dim).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from mqa_repro.data.tokenizer import PAD_ID

Array = jax.Array


def weights_of(targets: Array) -> Array:
  """1.0 on real target tokens (EOS included), 0.0 on padding."""
  return (targets != PAD_ID).astype(jnp.float32)


def token_nll(logits: Array, targets: Array) -> Array:
  """Negative log-likelihood of each target token: logits [B, T, Y] float32, targets [B, T] -> [B, T]."""
  logz = jax.nn.logsumexp(logits, axis=-1)
  picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  return logz - picked


def training_loss(logits: Array, targets: Array, weights: Array, *, label_smoothing: float = 0.0,
                  z_loss: float = 0.0) -> tuple[Array, dict[str, Array]]:
  """Label-smoothed cross-entropy plus z-loss (z · log(Z)^2, keeps the softmax normaliser near 1).

  Returns (mean loss per weighted token, sums for logging: nll, z_loss, weight).
  """
  y = logits.shape[-1]
  logz = jax.nn.logsumexp(logits, axis=-1)                          # [B, T]
  log_probs = logits - logz[..., None]
  nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
  if label_smoothing:
    confidence = 1.0 - label_smoothing
    low = label_smoothing / (y - 1)
    # subtract the minimum achievable loss so a perfect model reads ~0, as in t5x / flax examples
    normalizer = -(confidence * math.log(confidence) + (y - 1) * low * math.log(low + 1e-20))
    smooth = -jnp.mean(log_probs, axis=-1) * y * low                # spread mass on all classes
    loss = confidence * nll + (smooth - low * nll) - normalizer
  else:
    loss = nll
  zl = z_loss * jnp.square(logz)
  total = jnp.sum((loss + zl) * weights)
  denom = jnp.maximum(jnp.sum(weights), 1.0)
  return total / denom, {'nll_sum': jnp.sum(nll * weights), 'z_loss_sum': jnp.sum(zl * weights),
                         'weight_sum': jnp.sum(weights)}


def log_ppl(nll_sum: float, tokens: float) -> float:
  """ln(PPL) per subword token (Table 1's unit)."""
  return float(nll_sum) / max(float(tokens), 1.0)


def word_perplexity(nll_sum: float, words: float) -> float:
  """Perplexity per WORD (Table 3's unit): total log-loss over the word count, not the subword count."""
  return math.exp(float(nll_sum) / max(float(words), 1.0))
