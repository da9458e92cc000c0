"""The Pallas in-place beam reorder (kernels/beam_reorder.py) against kv_cache.reorder_state's XLA
gather, and beam search with reorder='pallas' against 'prefix'. CPU runs the kernel in Pallas
interpret mode; on a GPU one test also runs it compiled (Triton), where it really is in place."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mqa_repro.decoding import batch as decode_batch
from mqa_repro.decoding import search
from mqa_repro.kernels import beam_reorder
from mqa_repro.nn import decode_impl, kv_cache


def _cache(rows, slots, kv, hd, written, seed=0, dtype=jnp.float32):
  x = np.random.default_rng(seed).normal(size=(rows, slots, kv, hd))
  x[:, written:] = 0                                   # never written yet
  return jnp.asarray(x, dtype)


def _parents(b, w, seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(0, w, (b, w)), jnp.int32)


@pytest.mark.parametrize('slots,written,chunk', [(16, 0, 4), (16, 1, 4), (16, 7, 4), (16, 16, 4),
                                                 (12, 5, 16), (8, 30, 4)])
def test_kernel_equals_xla_prefix_gather(slots, written, chunk):
  """Full caches, a partial last chunk, L = 12 (chunks of 4 = gcd(12, 16)) and a wrapped ring buffer
  (written > L): the kernel's rows equal the XLA gather's on every slot."""
  b, w, kv, hd = 3, 4, 2, 8
  x = _cache(b * w, slots, kv, hd, written)
  parent = _parents(b, w, seed=written)
  src = (jnp.arange(b)[:, None] * w + parent).reshape(-1)
  want = kv_cache.reorder_state([x], src, jnp.int32(written), chunk=chunk)[0]
  got = beam_reorder.reorder_prefix(x, parent, jnp.int32(written), beams=w, chunk=chunk)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_slots_past_written_are_left_alone():
  """Stale data past the written slots (a step the kernel must not touch) stays as it was."""
  b, w, slots, written = 2, 2, 8, 3
  x = jnp.asarray(np.random.default_rng(1).normal(size=(b * w, slots, 1, 8)), jnp.float32)
  got = beam_reorder.reorder_prefix(x, jnp.asarray([[1, 1], [0, 0]]), jnp.int32(written), beams=w,
                                    chunk=1)
  np.testing.assert_array_equal(np.asarray(got[:, written:]), np.asarray(x[:, written:]))
  np.testing.assert_array_equal(np.asarray(got[0, :written]), np.asarray(x[1, :written]))
  np.testing.assert_array_equal(np.asarray(got[3, :written]), np.asarray(x[2, :written]))


def test_unsupported_shapes_name_the_leaf():
  x = jnp.zeros((6, 8, 1, 8))
  with pytest.raises(ValueError, match=r'\(6, 8, 1, 8\)'):
    beam_reorder.reorder_prefix(x, jnp.zeros((2, 3), jnp.int32), jnp.int32(1), beams=3)


def test_beam_search_with_the_kernel_equals_prefix_reorder():
  """A whole beam search (tiny translation model, 4 beams) gives the same tokens and scores when the
  cache is reordered by the kernel as by XLA's prefix gather."""
  from test_decode import _cache as model_cache, _sources, _tiny
  b, w, t = 2, 4, 6
  _, model, params = _tiny('translate', 'mha', vocab=16, max_length=8)
  inputs = jnp.asarray(_sources(b, 5, 16, seed=3))
  out = {}
  for reorder in ('prefix', 'pallas'):
    run = jax.jit(functools.partial(search.beam_search, decode_batch.model_step(model), batch_size=b,
                                    beam_size=w, max_len=t, reorder=reorder))
    cache = model_cache(model, params, inputs, b * w, t)
    out[reorder] = [np.asarray(a) for a in run(params, cache)]
    if reorder == 'pallas':  # the model's cache leaves took the kernel, not the XLA fallback
      assert 'beam_reorder_prefix' in str(jax.make_jaxpr(run)(params, cache))
  np.testing.assert_array_equal(out['prefix'][0], out['pallas'][0])
  np.testing.assert_allclose(out['prefix'][1], out['pallas'][1], rtol=1e-6)


@pytest.mark.skipif(jax.default_backend() != 'gpu', reason='compiled (Triton) kernel: GPU only')
@pytest.mark.parametrize('kv,written', [(8, 64), (1, 128), (1, 3)])
def test_compiled_kernel_in_place_on_gpu(kv, written):
  """The paper's beam shapes (W = 4, L = 128, H = 128, bf16), compiled, donated (truly in place)."""
  b, w, slots, hd = 64, 4, 128, 128
  x = _cache(b * w, slots, kv, hd, written, dtype=jnp.bfloat16)
  parent = _parents(b, w, seed=kv)
  src = (jnp.arange(b)[:, None] * w + parent).reshape(-1)
  want = np.asarray(kv_cache.reorder_state([x], src, jnp.int32(written))[0])
  run = jax.jit(lambda x, p, n: beam_reorder.reorder_prefix(x, p, n, beams=w, interpret=False),
                donate_argnums=0)
  got = run(x, parent, jnp.int32(written))
  np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.skipif(__import__('test_kernels')._jaxlib_version() > (0, 10, 2),
                    reason='newer jaxlib compiles Triton to PTX while lowering, which needs a GPU')
def test_lowers_to_triton_ir_without_a_gpu():
  """Cross-lowering for CUDA at the paper's beam shapes runs the Pallas -> Triton IR lowering
  (power-of-2 blocks, the dynamic row loads, the aliased output) on this CPU machine."""
  x = jax.ShapeDtypeStruct((1024, 128, 8, 128), jnp.bfloat16)
  parent = jax.ShapeDtypeStruct((256, 4), jnp.int32)
  fn = jax.jit(lambda x, p, n: beam_reorder.reorder_prefix(x, p, n, beams=4, interpret=False))
  text = fn.trace(x, parent, jax.ShapeDtypeStruct((), jnp.int32)).lower(
      lowering_platforms=('cuda',)).as_text()
  assert 'triton' in text and 'beam_reorder_prefix' in text


def test_translate_batch_with_the_pallas_paths_equals_xla():
  """translate_batch picks the reorder from the model (decode_impl.beam_reorder): a model with the
  Pallas attention path beam-searches with the kernel reorder and finds the XLA model's tokens."""
  from mqa_repro.nn import transformer as mdl
  from test_decode import _sources, _tiny
  c, model, params = _tiny('translate', 'mqa', vocab=16, max_length=16)
  pallas = mdl.make_model(c, dropout_rate=0.0, attention_dropout_rate=0.0, relu_dropout_rate=0.0,
                          attention_impl='pallas')
  assert decode_impl.beam_reorder(model.spec.attention_impl) == 'prefix'
  assert decode_impl.beam_reorder(pallas.spec.attention_impl) == 'pallas'
  inputs = _sources(3, 5, 16, seed=5)
  want = decode_batch.translate_batch(model, params, inputs, beam_size=4)
  got = decode_batch.translate_batch(pallas, params, inputs, beam_size=4)
  np.testing.assert_array_equal(got, want)
