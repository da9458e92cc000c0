"""The attention layer against the paper's own formulas, and its decode caches."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mqa_repro.nn.attention import Attention

B, T, D, N, H = 2, 6, 16, 4, 8


def _layer(num_kv_heads, **kw):
  return Attention(d_model=D, num_heads=N, num_kv_heads=num_kv_heads, qk_dim=H, v_dim=H, **kw)


def _reference(x, memory, p, causal):
  """Shazeer (2019) section 2-3 in numpy: per-head K/V `[b, m, h, k]` (or one head for multi-query)."""
  q = np.einsum('bnd,dhk->bnhk', x, p['query']) * H ** -0.5
  kv_heads = p['key'].shape[1]
  k = np.einsum('bmd,dgk->bmgk', memory, p['key'])
  v = np.einsum('bmd,dgv->bmgv', memory, p['value'])
  # the reference may repeat K/V per query head; the layer under test never does
  k = np.repeat(k, N // kv_heads, axis=2)
  v = np.repeat(v, N // kv_heads, axis=2)
  logits = np.einsum('bnhk,bmhk->bhnm', q, k)
  if causal:
    logits = np.where(np.tril(np.ones(logits.shape[-2:], bool)), logits, -np.inf)
  w = np.exp(logits - logits.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  o = np.einsum('bhnm,bmhv->bnhv', w, v)
  return np.einsum('bnhv,hvd->bnd', o, p['out'])


@pytest.mark.parametrize('num_kv_heads', [N, 2, 1])  # multi-head, grouped-query, multi-query
@pytest.mark.parametrize('causal', [False, True])
def test_matches_paper_formulas(num_kv_heads, causal):
  x = jax.random.normal(jax.random.PRNGKey(1), (B, T, D))
  layer = _layer(num_kv_heads, causal=causal)
  params = jax.tree_util.tree_map(np.asarray, layer.init(jax.random.PRNGKey(0), x)['params'])
  params = {k: np.asarray(getattr(v, 'value', v)) for k, v in params.items()}
  got = layer.apply({'params': params}, x)
  np.testing.assert_allclose(got, _reference(np.asarray(x), np.asarray(x), params, causal), rtol=1e-5,
                             atol=1e-5)


def test_grouped_query_endpoints_equal_multi_head_and_multi_query():
  """g = h is multi-head and g = 1 is multi-query, with the same weights in both layers."""
  x = jax.random.normal(jax.random.PRNGKey(2), (B, T, D))
  mha_params = nn.meta.unbox(_layer(N).init(jax.random.PRNGKey(0), x)['params'])
  # multi-head weights, and a multi-query layer that shares head 0's K/V projection with everyone
  mqa_params = dict(mha_params, key=mha_params['key'][:, :1], value=mha_params['value'][:, :1])
  shared = dict(mha_params, key=jnp.repeat(mqa_params['key'], N, 1),
                value=jnp.repeat(mqa_params['value'], N, 1))
  np.testing.assert_allclose(_layer(1).apply({'params': mqa_params}, x),
                             _layer(N).apply({'params': shared}, x), rtol=1e-5, atol=1e-6)
  # g = h through the grouped code path is plain multi-head
  np.testing.assert_allclose(_layer(N).apply({'params': mha_params}, x),
                             _reference(*(np.asarray(a) for a in (x, x)),
                                        {k: np.asarray(v) for k, v in mha_params.items()}, False),
                             rtol=1e-5, atol=1e-5)


def test_kv_never_repeated_to_all_heads():
  """No [B, S, N, H] key/value tensor exists in the compiled multi-query or grouped-query layer.

  S = 5 differs from T = 6, so a repeated K/V would show up as a tensor of exactly that shape.
  """
  x, memory = jnp.ones((B, T, D)), jnp.ones((B, 5, D))
  repeated = f'tensor<{B}x5x{N}x{H}xf32>'
  for kv in (1, 2):
    layer = _layer(kv)
    params = layer.init(jax.random.PRNGKey(0), x, memory)
    hlo = jax.jit(layer.apply).lower(params, x, memory).as_text()
    assert f'tensor<{B}x5x{kv}x{H}xf32>' in hlo      # the keys, at kv heads
    assert repeated not in hlo
  # the check can fail: a layer that repeats K/V up to N heads does show that tensor
  def repeating(p, x, m):
    k = jnp.repeat(jnp.einsum('BSD,DKH->BSKH', m, p['key']), N, axis=2)
    return jnp.einsum('BTD,DNH,BSNH->BNTS', x, p['query'], k)
  p = nn.meta.unbox(_layer(1).init(jax.random.PRNGKey(0), x, memory)['params'])
  assert repeated in jax.jit(repeating).lower(p, x, memory).as_text()


@pytest.mark.parametrize('window', [1, 3])
def test_local_attention_ignores_everything_outside_the_window(window):
  x = jax.random.normal(jax.random.PRNGKey(3), (1, 10, D))
  layer = _layer(2, causal=True, window=window)
  params = layer.init(jax.random.PRNGKey(0), x)
  base = layer.apply(params, x)
  i = 7                                      # query position under test
  far = x.at[0, : i - window + 1].add(100.0)  # change every position outside i's window
  np.testing.assert_array_equal(layer.apply(params, far)[0, i], base[0, i])
  near = x.at[0, i - window + 1].add(1.0)     # the oldest position inside the window matters
  assert not np.allclose(layer.apply(params, near)[0, i], base[0, i])
  future = x.at[0, i + 1:].add(100.0)         # and nothing after i does
  np.testing.assert_array_equal(layer.apply(params, future)[0, i], base[0, i])


def _decode_all(layer, params, x, cache_len, prefill):
  cache = layer.apply(params, x.shape[0], cache_len, method=Attention.init_self_cache)
  outs = []
  if prefill:
    y, cache = layer.apply(params, x[:, :prefill], cache, jnp.int32(0), method=Attention.decode_self)
    outs.append(y)
  for t in range(prefill, x.shape[1]):
    y, cache = layer.apply(params, x[:, t:t + 1], cache, jnp.int32(t), method=Attention.decode_self)
    outs.append(y)
  return jnp.concatenate(outs, axis=1), cache


@pytest.mark.parametrize('num_kv_heads,window,prefill', [(N, None, 0), (1, None, 3), (2, None, 5),
                                                         (2, 3, 0), (1, 4, 6), (N, 2, 1)])
def test_incremental_equals_parallel(num_kv_heads, window, prefill):
  """Prefill + one-token steps reproduce the full causal forward, also past the ring buffer's size."""
  x = jax.random.normal(jax.random.PRNGKey(4), (B, 11, D))
  layer = _layer(num_kv_heads, causal=True, window=window)
  params = layer.init(jax.random.PRNGKey(0), x)
  full = layer.apply(params, x)
  inc, cache = _decode_all(layer, params, x, 11, prefill)
  np.testing.assert_allclose(inc, full, rtol=1e-5, atol=1e-5)
  assert cache['key'].shape == (B, window or 11, num_kv_heads, H)
  assert set(cache) == {'key', 'value'}      # the position is the cache's one counter (kv_cache.py)


def test_multi_query_cache_is_h_times_smaller():
  mha = _layer(N).init_self_cache(B, 128)
  mqa = _layer(1).init_self_cache(B, 128)
  size = lambda c: c['key'].nbytes + c['value'].nbytes
  assert size(mha) == N * size(mqa)
  assert mqa['key'].shape == (B, 128, 1, H)


def test_cross_attention_broadcasts_memory_over_beams():
  """W hypotheses per sentence attend to ONE cached copy of the sentence's K/V."""
  memory = jax.random.normal(jax.random.PRNGKey(5), (B, 5, D))
  mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
  layer = _layer(2)
  params = layer.init(jax.random.PRNGKey(0), memory, memory)
  cache = layer.apply(params, memory, mask, method=Attention.init_cross_cache)
  assert cache['key'].shape == (B, 5, 2, H)
  beams = 3
  x = jax.random.normal(jax.random.PRNGKey(6), (B * beams, 1, D))
  got = layer.apply(params, x, cache, method=Attention.decode_cross)
  tiled_memory = jnp.repeat(memory, beams, axis=0)
  tiled_mask = jnp.repeat(mask, beams, axis=0)[:, None, :]
  want = layer.apply(params, x, tiled_memory, tiled_mask)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
