"""The Pallas decode-attention kernel against ``attention.attend`` (T = 1), and the model's decode with
attention_impl='pallas' against 'xla'. CPU runs the kernel in Pallas interpret mode; on a GPU the
last test also runs it compiled (Triton)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mqa_repro import config as cfg
from mqa_repro.nn import kv_cache
from mqa_repro.nn import transformer as mdl
from mqa_repro.nn.attention import Attention, attend
from mqa_repro.kernels import decode_attention
from test_model import random_batch

H = 16  # >= 16: the tensor-core path runs for M >= 4, compiled or interpreted


def _qkv(b, w, slots, kv, g, seed=0, dtype=jnp.float32):
  """q [B·W, K, G, H] (scaled), k [B, S, K, H], v [B, S, K, V] with V = 2H (a different head dim)."""
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(b * w, kv, g, H)) * H ** -0.5
  k = rng.normal(size=(b, slots, kv, H))
  v = rng.normal(size=(b, slots, kv, 2 * H))
  return tuple(jnp.asarray(a, dtype) for a in (q, k, v))


@functools.partial(jax.jit, static_argnums=4)
def _reference(q, k, v, mask, w=1):
  """attend() with T = 1: q [B·W, K, G, H], mask broadcastable to [B, S] -> [B·W, K, G, V]."""
  b = k.shape[0]
  q6 = q.reshape(b, w, 1, *q.shape[1:])                           # [B, W, T=1, K, G, H]
  m = jnp.broadcast_to(mask, (b, k.shape[1]))[:, None, None, None, None, :]
  o = attend(q6, k, v, m)                                          # [B, W, 1, K, G, V]
  return o.reshape(q.shape[0], *o.shape[3:])


def _garbage_past(x, length, scale=1e3, seed=1):
  """Slots >= length (per row) filled with large finite junk: it must not matter."""
  length = np.broadcast_to(np.asarray(length), (x.shape[0],))
  junk = scale * np.random.default_rng(seed).normal(size=x.shape)
  dead = np.arange(x.shape[1])[None, :] >= length[:, None]        # [B, S]
  return jnp.where(dead[:, :, None, None], jnp.asarray(junk, x.dtype), x)


def _close(got, want, tol=1e-5):
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=tol, atol=tol)


def _kernel(**static):
  """decode_attention jitted over (q, k, v, length, mask): one compile serves many lengths."""
  return jax.jit(lambda q, k, v, length=None, mask=None: decode_attention(
      q, k, v, length=length, mask=mask, **static))


# MHA, GQA, MQA (M = G >= 4: the tensor-core path); a ragged last block (S = 11), and bk > S
@pytest.mark.parametrize('kv,g,slots,block_k', [(4, 1, 11, 4), (2, 2, 11, 4), (1, 4, 11, 4),
                                                (1, 8, 11, 4), (1, 8, 13, 16)])
def test_self_attention_reads_only_the_live_prefix(kv, g, slots, block_k):
  q, k, v = _qkv(3, 1, slots, kv, g)
  kernel = _kernel(block_k=block_k)
  for length in sorted({1, 4, 5, 7, slots}):
    kj, vj = _garbage_past(k, length), _garbage_past(v, length, seed=2)
    got = kernel(q, kj, vj, jnp.asarray(length))
    assert got.shape == (3, kv, g, 2 * H) and got.dtype == v.dtype
    _close(got, _reference(q, kj, vj, (jnp.arange(slots) < length)[None]))
  # per-row lengths; slots past them may even hold NaN / inf (e.g. an uninitialised cache)
  lengths = np.array([slots, 5, 1])
  want = _reference(q, k, v, np.arange(slots)[None] < lengths[:, None])
  _close(kernel(q, _garbage_past(k, lengths, np.nan), _garbage_past(v, lengths, np.inf),
                jnp.asarray(lengths)), want)


# split over S (P programs per row and head, partials combined): P = 1 is the single-pass kernel;
# P larger than the live blocks leaves some splits empty
@pytest.mark.parametrize('kv,g,splits', [(4, 1, 2), (1, 8, 3), (2, 2, 5), (1, 8, 16)])
def test_split_cache_equals_the_single_pass(kv, g, splits):
  slots = 37
  q, k, v = _qkv(3, 1, slots, kv, g, seed=7)
  kernel = _kernel(block_k=4, splits=splits)
  for length in (1, 4, 5, 17, slots):
    kj, vj = _garbage_past(k, length), _garbage_past(v, length, seed=2)
    _close(kernel(q, kj, vj, jnp.asarray(length)),
           _reference(q, kj, vj, (jnp.arange(slots) < length)[None]))
  lengths = np.array([slots, 9, 0])          # a row with nothing live: 0, as the single pass gives
  got = kernel(q, _garbage_past(k, lengths, np.nan), _garbage_past(v, lengths, np.inf),
               jnp.asarray(lengths))
  want = _reference(q, k, v, np.arange(slots)[None] < lengths[:, None])
  _close(got[:2], want[:2])
  _close(got[2], np.zeros_like(got[2]))
  _close(_kernel(block_k=4, splits=1)(q, k, v, jnp.asarray(lengths))[2], np.zeros_like(got[2]))
  # cross-attention with holes, a fully masked row and beams sharing memory rows
  b, beams, s = 3, 2, 29
  q, k, v = _qkv(b, beams, s, kv, g, seed=8)
  mask = np.ones((b, s), bool)
  mask[0, [0, 5, 28]] = False
  mask[1, 13:] = False
  mask[2] = False
  _close(_kernel(beams=beams, block_k=4, splits=splits)(q, k, v, mask=jnp.asarray(mask)),
         _reference(q, k, v, mask, beams))


def test_splits_by_default_only_where_programs_are_few_and_the_cache_long():
  from mqa_repro.kernels.decode_attention import auto_splits
  assert auto_splits(1024 * 8, 128, 16) == 1      # the paper's batch: the single pass
  assert auto_splits(8, 128, 16) == 1             # batch 1, a short cache: 8 blocks, too few to split
  assert auto_splits(8, 1024, 16) == 8            # batch 1, multi-head, 1024 slots: 64 blocks / 8
  assert auto_splits(1, 1024, 64) == 2            # multi-query: 16 blocks
  assert auto_splits(64, 4096, 16) == 2           # 128 programs reached at P = 2
  with pytest.raises(ValueError, match='splits = 0'):
    decode_attention(*_qkv(1, 1, 8, 1, 4), splits=0)


@pytest.mark.parametrize('kv,g,beams', [(4, 1, 3), (2, 2, 4), (1, 8, 1), (1, 8, 3)])
def test_cross_attention_mask_and_beams_sharing_memory_rows(kv, g, beams):
  b, s = 4, 10
  q, k, v = _qkv(b, beams, s, kv, g, seed=4)
  mask = np.ones((b, s), bool)
  mask[1, 6:] = False                       # padded source
  mask[2, [0, 3, 4, 9]] = False             # holes, last slot masked
  mask[3] = False                           # nothing to attend: attend() averages all S slots
  want = _reference(q, k, v, mask, beams)
  # hypothesis r uses memory row r // W: the same as tiling K/V W times
  tiled = _reference(q, jnp.repeat(k, beams, 0), jnp.repeat(v, beams, 0),
                     np.repeat(mask, beams, 0))
  _close(want, tiled)
  _close(_kernel(beams=beams, block_k=4)(q, k, v, mask=jnp.asarray(mask)), want)


def test_ring_buffer_of_local_attention_equals_xla_decode():
  """decode_self on a window-4 ring, stepping past the window: 'pallas' == 'xla' at every step."""
  b, d, steps, window = 2, 16, 9, 4
  layers = {impl: Attention(d_model=d, num_heads=4, num_kv_heads=2, qk_dim=H, v_dim=H, causal=True,
                            window=window, impl=impl) for impl in ('xla', 'pallas')}
  xs = jax.random.normal(jax.random.PRNGKey(0), (steps, b, 1, d))
  params = jax.jit(layers['xla'].init)(jax.random.PRNGKey(1), xs[0])
  caches = {impl: layers[impl].init_self_cache(b, 0) for impl in layers}
  steps_fn = {impl: jax.jit(lambda x, c, t, layer=layer: layer.apply(params, x, c, t,
                                                                     method=Attention.decode_self))
              for impl, layer in layers.items()}
  for t in range(steps):
    outs = {}
    for impl in layers:
      outs[impl], caches[impl] = steps_fn[impl](xs[t], caches[impl], jnp.int32(t))
    _close(outs['pallas'], outs['xla'])
  assert caches['pallas']['key'].shape[1] == window


@pytest.mark.parametrize('task,row,window,impl', [('translate', 'mqa', None, 'pallas_all'),
                                                   ('translate', 'mha_local', 3, 'pallas')])
def test_model_decode_pallas_equals_xla(task, row, window, impl):
  """test_model's cached-steps pattern (one token a step) with both attention paths."""
  c = cfg.row_config(task, row, 'tiny')
  c.model.update(dtype='float32', window=window)
  models = {name: mdl.make_model(c, dropout_rate=0.0, attention_dropout_rate=0.0,
                                 relu_dropout_rate=0.0, attention_impl=name)
            for name in ('xla', impl)}
  assert models[impl].spec.attention_impl == impl
  b, s, t = 2, 7, 8
  batch = random_batch(task, b, s, t)
  variables = jax.jit(models['xla'].init)(jax.random.PRNGKey(0), batch)
  tokens = mdl.shift_right(jnp.asarray(batch['targets']))
  logits = {}
  for name, model in models.items():
    @jax.jit
    def decode(variables, inputs, model=model):
      cache = kv_cache.for_sources(model, variables['params'], inputs, b, t)

      def step(cache, token):                       # token [B]: one position a step
        out, cache = model.apply(variables, token[:, None], cache, method=mdl.Transformer.step)
        return cache, out[:, 0]
      return jax.lax.scan(step, cache, tokens.T)[1]  # [T, B, V]
    logits[name] = decode(variables, batch.get('inputs'))
  scale = float(jnp.max(jnp.abs(logits['xla'])))
  assert float(jnp.max(jnp.abs(logits[impl] - logits['xla']))) / scale < 1e-5


def test_bfloat16_in_and_out():
  q, k, v = _qkv(2, 2, 32, 1, 8, seed=5, dtype=jnp.bfloat16)
  got = decode_attention(q, k, v, length=20, beams=2)
  assert got.dtype == jnp.bfloat16
  want = _reference(*(x.astype(jnp.float32) for x in (q, k, v)), jnp.arange(32)[None] < 20, 2)
  _close(got.astype(jnp.float32), want, tol=3e-2)


@pytest.mark.skipif(jax.default_backend() != 'gpu', reason='compiled (Triton) kernel: GPU only')
@pytest.mark.parametrize('kv,g,beams,b,s', [(1, 8, 1, 64, 128), (8, 1, 1, 64, 128), (1, 8, 4, 64, 128),
                                            (2, 4, 1, 64, 128), (8, 1, 1, 1, 1024), (1, 8, 1, 2, 1024)])
def test_compiled_kernel_on_gpu(kv, g, beams, b, s):
  """The paper's head shapes (H = V = 128), bf16, compiled: against attend() in float32; the last
  two split their long caches (batch 1 and 2)."""
  rng = np.random.default_rng(6)
  hd = 128
  q = jnp.asarray(rng.normal(size=(b * beams, kv, g, hd)) * hd ** -0.5, jnp.bfloat16)
  k, v = (jnp.asarray(rng.normal(size=(b, s, kv, hd)), jnp.bfloat16) for _ in range(2))
  lengths = jnp.asarray(rng.integers(1, s + 1, b), jnp.int32)
  mask = jnp.arange(s)[None] < lengths[:, None]
  got = jax.jit(lambda *a: decode_attention(*a, mask=mask, beams=beams, interpret=False))(q, k, v)
  want = _reference(*(x.astype(jnp.float32) for x in (q, k, v)), mask, beams)
  _close(got.astype(jnp.float32), want, tol=3e-2)


def _jaxlib_version():
  from jax._src.lib import version  # private, but the only way to know how Pallas Triton lowers
  return tuple(version)


@pytest.mark.skipif(_jaxlib_version() > (0, 10, 2),
                    reason='newer jaxlib compiles Triton to PTX while lowering, which needs a GPU')
@pytest.mark.parametrize('kv,g,beams', [(1, 8, 1), (8, 1, 4)])
def test_lowers_to_triton_ir_without_a_gpu(kv, g, beams):
  """Cross-lowering for CUDA runs the Pallas -> Triton IR lowering (power-of-2 blocks, supported
  primitives, a dynamic-trip-count scf.for) at the paper's head shapes, on this CPU machine."""
  b, s, hd = 8, 100, 128
  q = jax.ShapeDtypeStruct((b * beams, kv, g, hd), jnp.bfloat16)
  k = jax.ShapeDtypeStruct((b, s, kv, hd), jnp.bfloat16)
  mask = jax.ShapeDtypeStruct((b, s), jnp.bool_)
  fn = jax.jit(lambda q, k, v, m: decode_attention(q, k, v, mask=m, beams=beams, interpret=False))
  text = fn.trace(q, k, k, mask).lower(lowering_platforms=('cuda',)).as_text()
  assert 'triton' in text and 'mqa_decode_attention' in text


@pytest.mark.skipif(_jaxlib_version() > (0, 10, 2),
                    reason='newer jaxlib compiles Triton to PTX while lowering, which needs a GPU')
@pytest.mark.parametrize('kv,g', [(8, 1), (1, 8)])
def test_split_cache_lowers_to_triton_ir_without_a_gpu(kv, g):
  """Batch 1 over a 1024-slot cache: the split kernel (program id over P, partial outputs) lowers."""
  from mqa_repro.kernels.decode_attention import auto_splits
  assert auto_splits(kv, 1024, 16 if g == 1 else 64) > 1
  q = jax.ShapeDtypeStruct((1, kv, g, 128), jnp.bfloat16)
  k = jax.ShapeDtypeStruct((1, 1024, kv, 128), jnp.bfloat16)
  fn = jax.jit(lambda q, k, v: decode_attention(q, k, v, length=700, interpret=False))
  text = fn.trace(q, k, k).lower(lowering_platforms=('cuda',)).as_text()
  assert 'triton' in text and 'mqa_decode_attention' in text


def test_on_a_tpu_the_kernels_name_the_config_field_that_turns_them_off(monkeypatch):
  from mqa_repro.kernels import beam_reorder
  monkeypatch.setattr(jax, 'default_backend', lambda: 'tpu')
  q, k, v = jnp.zeros((2, 1, 8, 16)), jnp.zeros((2, 32, 1, 16)), jnp.zeros((2, 32, 1, 16))
  with pytest.raises(ValueError, match=r"decode_attention: .* do not run on 'tpu'; set "
                                       r"--config.model.attention_impl=xla"):
    decode_attention(q, k, v)
  with pytest.raises(ValueError, match=r"reorder_prefix: .*attention_impl=xla"):
    beam_reorder.reorder_prefix(jnp.zeros((4, 32, 1, 16)), jnp.zeros((2, 2), jnp.int32), 3, beams=2)
