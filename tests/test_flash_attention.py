"""The fused training attention (kernels/flash_attention.py) against attend()'s einsums: outputs and
gradients for multi-head / grouped-query / multi-query heads, masks (a fully masked row included) and
dropout with the kernel's own keep bits; then a whole model on train_attention_impl='pallas'. CPU runs
the kernels in Pallas interpret mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mqa_repro import config as cfg
from mqa_repro.kernels.flash_attention import dropout_keep, flash_attention
from mqa_repro.nn import transformer as mdl
from mqa_repro.nn.attention import Attention, attend
from test_model import random_batch


def _reference(q, k, v, mask, keep, rate):
  """attend() over q [B, T, N, H]: the einsum path, with `keep` [B, N, T, S] as the dropout."""
  b, t, n, h = q.shape
  kh = k.shape[2]
  q6 = q.reshape(b, 1, t, kh, n // kh, h)
  if not rate:
    o = attend(q6, k, v, mask[:, None, None, None])
  else:   # attend() with these keep bits instead of flax's (p / (1 - rate) where kept)
    class KeepBits:
      def __call__(self, p, deterministic):
        return jnp.where(keep.reshape(p.shape), p / (1 - rate), 0.0)
    o = attend(q6, k, v, mask[:, None, None, None], dropout=KeepBits(), deterministic=False)
  return o.reshape(b, t, n, -1)


@pytest.mark.parametrize('n,kh,t,s,rate', [(4, 4, 32, 16, 0.0), (4, 2, 16, 48, 0.3), (4, 1, 16, 32, 0.1)])
def test_outputs_and_gradients_equal_the_einsums(n, kh, t, s, rate):
  rng = np.random.default_rng(0)
  b = 2
  q = jnp.asarray(rng.normal(size=(b, t, n, 16)) * 0.25, jnp.float32)
  k = jnp.asarray(rng.normal(size=(b, s, kh, 16)), jnp.float32)
  v = jnp.asarray(rng.normal(size=(b, s, kh, 32)), jnp.float32)
  mask = rng.random((b, t, s)) > 0.3
  mask[0, 3] = False                         # nothing to attend: attend() averages all S slots
  mask = jnp.asarray(mask)
  keep = dropout_keep(jnp.uint32(7), b, n, t, s, rate)
  fused = lambda q, k, v: flash_attention(q, k, v, mask, rate=rate, seed=7, block_q=16, block_k=16)
  ref = lambda q, k, v: _reference(q, k, v, mask, keep, rate)
  np.testing.assert_allclose(fused(q, k, v), ref(q, k, v), rtol=1e-5, atol=1e-5)
  ct = jnp.asarray(rng.normal(size=(b, t, n, 32)), jnp.float32)
  got = jax.grad(lambda *a: jnp.sum(fused(*a) * ct), (0, 1, 2))(q, k, v)
  want = jax.grad(lambda *a: jnp.sum(ref(*a) * ct), (0, 1, 2))(q, k, v)
  for name, g, w in zip('qkv', got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=f'd{name}')


def test_dropout_bits_drop_the_rate_and_depend_on_seed_and_element():
  a = dropout_keep(jnp.uint32(1), 2, 4, 64, 64, 0.25)
  b = dropout_keep(jnp.uint32(2), 2, 4, 64, 64, 0.25)
  assert abs(1 - float(a.mean()) - 0.25) < 0.01
  assert 0.3 < float(jnp.mean(a != b)) < 0.45            # independent draws differ on 2·p·(1-p)
  assert float(jnp.mean(a[0, 0] != a[1, 3])) > 0.3       # heads and rows do not repeat each other
  assert bool(jnp.all(dropout_keep(jnp.uint32(1), 1, 1, 8, 8, 0.0)))


def test_bad_shapes_and_rates_are_refused():
  q, k = jnp.zeros((1, 8, 3, 16)), jnp.zeros((1, 8, 2, 16))
  with pytest.raises(ValueError, match='multiple of K'):
    flash_attention(q, k, k)
  with pytest.raises(ValueError, match='dropout rate 1.0'):
    flash_attention(jnp.zeros((1, 8, 2, 16)), k, k, rate=1.0)
  with pytest.raises(ValueError, match='config.model.train_attention_impl'):
    c = cfg.row_config('lm', 'mqa', 'tiny')
    c.model.train_attention_impl = 'cudnn'
    cfg.validate(c)


def test_cross_attention_layer_with_a_padded_memory_equals_the_einsums():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 32))
  memory = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 32))
  mask = jnp.broadcast_to((jnp.arange(16) < jnp.array([[16], [5]]))[:, None, :], (2, 16, 16))
  layers = {impl: Attention(d_model=32, num_heads=4, num_kv_heads=1, qk_dim=16, v_dim=16,
                            train_impl=impl) for impl in ('xla', 'pallas')}
  params = layers['xla'].init(jax.random.PRNGKey(2), x, memory, mask)
  out = {impl: layer.apply(params, x, memory, mask) for impl, layer in layers.items()}
  np.testing.assert_allclose(out['pallas'], out['xla'], rtol=1e-5, atol=1e-5)


def test_a_model_on_the_fused_path_trains_like_the_einsum_path():
  """Same loss and gradients without dropout; with dropout a step is reproducible from its rng."""
  task = 'lm'
  c = cfg.row_config(task, 'gqa2', 'tiny')
  c.model.dtype = 'float32'
  batch = random_batch(task, 2, 8, 16)
  models = {impl: mdl.make_model(c, train_attention_impl=impl, dropout_rate=0.0,
                                 attention_dropout_rate=0.0, relu_dropout_rate=0.0)
            for impl in ('xla', 'pallas')}
  variables = models['xla'].init(jax.random.PRNGKey(0), batch)

  def loss(params, model, **kw):
    logits = model.apply({'params': params}, batch, **kw)
    return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(
        logits, jnp.asarray(batch['targets'])[..., None], -1)[..., 0])
  (lx, gx), (lp, gp) = (jax.value_and_grad(loss)(variables['params'], models[i]) for i in ('xla', 'pallas'))
  np.testing.assert_allclose(lp, lx, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(gp), jax.tree_util.tree_leaves(gx)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
  dropped = mdl.make_model(c, train_attention_impl='pallas', dropout_rate=0.0,
                           attention_dropout_rate=0.3, relu_dropout_rate=0.0)
  run = lambda seed: loss(variables['params'], dropped, deterministic=False,
                          rngs={'dropout': jax.random.PRNGKey(seed)})
  assert float(run(1)) == float(run(1)) and float(run(1)) != float(run(2)) and float(run(1)) != float(lx)


@pytest.mark.skipif(jax.default_backend() != 'gpu', reason='compiled (Triton) kernel: GPU only')
@pytest.mark.parametrize('n,kh', [(8, 8), (8, 1), (8, 2)])
def test_compiled_kernel_on_gpu(n, kh):
  """The paper's head shapes (H = V = 128, T = S = 256), bf16, compiled, with dropout: against the
  einsums in float32, outputs and gradients."""
  rng = np.random.default_rng(3)
  b, t, rate = 4, 256, 0.1
  q = jnp.asarray(rng.normal(size=(b, t, n, 128)) * 128 ** -0.5, jnp.bfloat16)
  k, v = (jnp.asarray(rng.normal(size=(b, t, kh, 128)), jnp.bfloat16) for _ in range(2))
  mask = jnp.asarray(np.tril(np.ones((t, t), bool))[None].repeat(b, 0))
  keep = dropout_keep(jnp.uint32(5), b, n, t, t, rate)
  fused = jax.jit(lambda q, k, v: flash_attention(q, k, v, mask, rate=rate, seed=5, interpret=False))
  f32 = lambda *a: tuple(x.astype(jnp.float32) for x in a)
  np.testing.assert_allclose(fused(q, k, v).astype(jnp.float32),
                             _reference(*f32(q, k, v), mask, keep, rate), rtol=5e-2, atol=5e-2)
  ct = jnp.asarray(rng.normal(size=(b, t, n, 128)), jnp.float32)
  got = jax.grad(lambda *a: jnp.sum(fused(*a).astype(jnp.float32) * ct), (0, 1, 2))(q, k, v)
  want = jax.grad(lambda *a: jnp.sum(_reference(*a, mask, keep, rate) * ct), (0, 1, 2))(*f32(q, k, v))
  for name, g, w in zip('qkv', got, want):
    scale = float(jnp.max(jnp.abs(w)))
    np.testing.assert_allclose(g.astype(jnp.float32) / scale, w / scale, atol=5e-2, err_msg=f'd{name}')


@pytest.mark.skipif(tuple(__import__('jax._src.lib', fromlist=['version']).version) > (0, 10, 2),
                    reason='newer jaxlib compiles Triton to PTX while lowering, which needs a GPU')
def test_forward_and_backward_lower_to_triton_ir_without_a_gpu():
  """The paper's shapes (T = S = 256, H = V = 128, bf16), multi-query, with dropout: all three
  kernels go through the Pallas -> Triton IR lowering on this CPU machine."""
  q = jax.ShapeDtypeStruct((2, 256, 8, 128), jnp.bfloat16)
  k = jax.ShapeDtypeStruct((2, 256, 1, 128), jnp.bfloat16)
  m = jax.ShapeDtypeStruct((2, 256, 256), jnp.bool_)
  f = lambda q, k, v, m: flash_attention(q, k, v, m, rate=0.1, seed=3, interpret=False)  # noqa: E731
  grad = jax.jit(jax.grad(lambda *a: f(*a).astype(jnp.float32).sum(), (0, 1, 2)))
  text = grad.trace(q, k, k, m).lower(lowering_platforms=('cuda',)).as_text()
  for kernel in ('fwd', 'dq', 'dkv'):
    assert f'mqa_flash_attention_{kernel}' in text, kernel
