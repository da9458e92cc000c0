"""convert: a multi-head run -> grouped-query / multi-query run that trains on (uptraining) and decodes."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mqa_repro import config as cfg
from mqa_repro.nn import transformer as mdl
from mqa_repro.training import convert


def _tiny_lm(num_kv_heads=8):
  c = cfg.row_config('lm', 'mha', 'tiny')
  c.model.update(dtype='float32', num_kv_heads=num_kv_heads, d_model=16, qk_dim=4, v_dim=4, d_ff=32,
                 decoder_layers=1, vocab_size=128, max_length=16)
  return c, mdl.make_model(c)


BATCH = {'targets': np.array([[5, 9, 17, 3, 40, 1]], np.int32)}


def test_g_equal_h_returns_the_same_model():
  c, model = _tiny_lm()
  params = mdl.nn.meta.unbox(model.init(jax.random.PRNGKey(0), BATCH)['params'])
  for init in ('mean', 'first'):
    same = convert.convert_params(params, c.model.num_heads, init)
    np.testing.assert_array_equal(model.apply({'params': same}, BATCH), model.apply({'params': params}, BATCH))


def test_mean_pooled_forward_equals_a_hand_computation():
  """One layer, no norms' effect on the check: attention of the converted model against numpy, with
  the group means of K/V computed by hand, query head n reading kv head n // (h / G)."""
  c, mha = _tiny_lm()
  params = mdl.nn.meta.unbox(mha.init(jax.random.PRNGKey(1), BATCH)['params'])
  g = 2
  gqa = convert.convert_params(params, g, 'mean')
  _, gqa_model = _tiny_lm(num_kv_heads=g)
  attn = gqa_model.apply({'params': gqa}, BATCH, method=lambda m, b: m.decoder[0].self_attn(
      jnp.asarray(np.random.default_rng(0).normal(size=(1, 6, 16)), jnp.float32)))
  x = np.random.default_rng(0).normal(size=(6, 16))
  p = params['decoder_0']['self_attn']
  wq, wk, wv, wo = (np.asarray(p[k], np.float64) for k in ('query', 'key', 'value', 'out'))
  h, d_k = wq.shape[1], wq.shape[2]
  wk_g = wk.reshape(16, g, h // g, d_k).mean(2)          # [D, G, H]: the hand-made group means
  wv_g = wv.reshape(16, g, h // g, d_k).mean(2)
  out = np.zeros((6, 16))
  for n in range(h):
    q = x @ wq[:, n] / np.sqrt(d_k)
    k, v = x @ wk_g[:, n // (h // g)], x @ wv_g[:, n // (h // g)]
    logits = q @ k.T + np.where(np.tril(np.ones((6, 6))) > 0, 0, -1e30)
    w = np.exp(logits - logits.max(1, keepdims=True))
    out += (w / w.sum(1, keepdims=True)) @ v @ wo[n]
  np.testing.assert_allclose(np.asarray(attn[0]), out, rtol=1e-4, atol=1e-5)


def test_first_and_random_inits():
  c, model = _tiny_lm()
  params = mdl.nn.meta.unbox(model.init(jax.random.PRNGKey(0), BATCH)['params'])
  first = convert.convert_params(params, 2, 'first')
  k = params['decoder_0']['self_attn']['key']
  np.testing.assert_array_equal(first['decoder_0']['self_attn']['key'][:, 1], k[:, 4])
  _, small = _tiny_lm(num_kv_heads=2)
  fresh = mdl.nn.meta.unbox(small.init(jax.random.PRNGKey(7), BATCH)['params'])
  rand = convert.convert_params(params, 2, 'random', fresh)
  np.testing.assert_array_equal(rand['decoder_0']['self_attn']['key'], fresh['decoder_0']['self_attn']['key'])
  np.testing.assert_array_equal(rand['decoder_0']['self_attn']['query'], params['decoder_0']['self_attn']['query'])


def test_params_fingerprint_tells_trainings_apart():
  _, model = _tiny_lm()
  a = mdl.nn.meta.unbox(model.init(jax.random.PRNGKey(0), BATCH)['params'])
  b = jax.tree_util.tree_map(lambda x: x, a)
  b['decoder_0']['self_attn']['key'] = b['decoder_0']['self_attn']['key'].at[0, 0, 0].add(1e-6)
  assert convert.params_fingerprint(a) == convert.params_fingerprint(jax.tree_util.tree_map(np.asarray, a))
  assert convert.params_fingerprint(a) != convert.params_fingerprint(b)


@pytest.mark.parametrize('g', [3, 0, 16])
def test_a_g_that_does_not_divide_the_kv_heads_is_refused(g):
  c, _ = _tiny_lm()
  with pytest.raises(ValueError, match=f'--kv-heads {g} must divide'):
    convert.converted_config(c, g, 'x', 0.05)


def _source(data):
  from test_train import tiny
  return tiny('translate', 'mha', data, num_train_steps=20, checkpoint_every=20)


def multi_head_source(workdir, data):
  from test_train import _train_cmd
  return _train_cmd(_source(data), workdir), {}


@pytest.mark.slow
@pytest.mark.background(job=multi_head_source)
def test_converted_run_uptrains_and_decodes_through_the_clis(shared_data, background, tmp_path,
                                                              capsys):
  from mqa_repro import cli
  c = _source(shared_data)
  source, _ = background.succeeded(multi_head_source)     # `mqa-repro train`, 20 steps
  assert cli.main(['convert', '--from', str(source), '--to', str(tmp_path / 'mqa'),
                   '--kv-heads', '1', '--uptrain-fraction', '0.2']) == 0
  out = capsys.readouterr().out
  record = json.loads((tmp_path / 'mqa' / 'converted_from.json').read_text())
  assert record['kv_heads'] == 1 and record['uptrain_steps'] == 4 and record['params_lost'] > 0
  assert f"{record['params_lost']:,} fewer" in out
  from mqa_repro.training import checkpoint
  _, source_params, _ = checkpoint.load_for_inference(source, log=lambda s: None)
  assert record['source_fingerprint'] == convert.params_fingerprint(source_params)
  saved = json.loads((tmp_path / 'mqa' / 'config.json').read_text())
  assert saved['model']['num_kv_heads'] == 1 and saved['model']['d_ff'] == c.model.d_ff
  assert cli.main(['train', '--workdir', str(tmp_path / 'mqa')]) == 0    # uptrain: the run's own config
  records = [json.loads(line) for line in open(tmp_path / 'mqa' / 'metrics.jsonl')]
  assert records[-1]['step'] == 4 and np.isfinite(records[-1]['train_loss'])
  src = tmp_path / 'src.en'
  src.write_text('A Republican strategy to counter the re-election of Obama\nHello\n')
  assert cli.main(['decode', '--workdir', str(tmp_path / 'mqa'), '--input', str(src), '--output',
                   str(tmp_path / 'hyp.de'), '--beam', '2']) == 0
  assert len((tmp_path / 'hyp.de').read_text().splitlines()) == 2
  # converting into an existing run is refused, naming it
  assert cli.main(['convert', '--from', str(source), '--to', str(tmp_path / 'mqa'),
                   '--kv-heads', '2']) == 2
  assert 'already holds a run' in capsys.readouterr().err
