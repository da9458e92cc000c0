"""The paper's two models: parameter counts, decode consistency, configs that must be refused."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mqa_repro import config as cfg
from mqa_repro import costs
from mqa_repro.nn import transformer as mdl

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden', 'param_shapes.json')
PAPER_D_FF = {('translate', 'mha'): 4096, ('translate', 'mqa'): 5440, ('translate', 'h1_dk128'): 6784,
              ('translate', 'h2_dk64'): 6784, ('translate', 'h4_dk32'): 6784,
              ('translate', 'h8_dk16'): 6784, ('translate', 'mha_local'): 4096,
              ('translate', 'mqa_local'): 5440, ('lm', 'mha'): 8192, ('lm', 'mqa'): 9088,
              ('lm', 'h1_dk128'): 9984, ('lm', 'h2_dk64'): 9984, ('lm', 'h4_dk32'): 9984,
              ('lm', 'h8_dk16'): 9984}


def _golden_entry(c):
  params = mdl.abstract_params(mdl.make_model(c), c.task)
  shapes = mdl.param_shapes(params)
  keep = {k: v for k, v in shapes.items() if k.startswith(('decoder_0/', 'embedding', 'softmax'))}
  return {'params': mdl.count_params(params), 'shapes': keep}


@pytest.mark.parametrize('task,row', sorted(PAPER_D_FF))
def test_equal_parameter_rule_lands_on_the_papers_d_ff(task, row):
  assert cfg.row_config(task, row).model.d_ff == PAPER_D_FF[task, row]


def test_paper_rows_have_the_papers_parameter_counts_and_golden_shapes():
  golden = json.load(open(GOLDEN)) if os.path.exists(GOLDEN) else {}
  fresh = {}
  for task, target in (('translate', 211e6), ('lm', 192e6)):
    for row in cfg.ROWS[task]:
      c = cfg.row_config(task, row)
      entry = fresh[c.name] = _golden_entry(c)
      assert abs(entry['params'] - target) / target < 0.01, (c.name, entry['params'])
      # the analytic count that drives the d_ff rule agrees with the real module
      assert entry['params'] == costs.param_count(c.model, task)
  if os.environ.get('MQA_REPRO_UPDATE_GOLDEN'):
    json.dump(fresh, open(GOLDEN, 'w'), indent=1, sort_keys=True)
  assert fresh == golden, 'parameter shapes changed; rerun with MQA_REPRO_UPDATE_GOLDEN=1 if intended'


def test_multi_query_before_widening_is_about_178m():
  c = cfg.row_config('translate', 'mqa')
  c.model.d_ff = 4096
  assert abs(costs.param_count(c.model, 'translate') - 178e6) / 178e6 < 0.005


def _tiny(task, row, **model):
  c = cfg.row_config(task, row, 'tiny')
  c.model.dtype = 'float32'
  c.model.update(model)
  return c, mdl.make_model(c, dropout_rate=0.0, attention_dropout_rate=0.0, relu_dropout_rate=0.0)


def random_batch(task, b, s, t, seed=0):
  """Targets [B, T] (and for translation inputs [B, S], row 0 padded from 5 on) of ids 4..199."""
  rng = np.random.default_rng(seed)
  batch = {'targets': rng.integers(4, 200, (b, t)).astype(np.int32)}
  if task == 'translate':
    batch['inputs'] = rng.integers(4, 200, (b, s)).astype(np.int32)
    batch['inputs'][0, 5:] = 0                      # padded source: the mask must hide it
  return batch


@pytest.mark.parametrize('task,row,window', [
    ('translate', 'mha', None), ('translate', 'mqa', None), ('translate', 'gqa2', None),
    ('translate', 'mqa_local', 3), ('lm', 'mha', None), ('lm', 'mqa', None), ('lm', 'gqa2', None),
    ('lm', 'mha', 4)])
def test_full_forward_equals_prefill_plus_cached_steps(task, row, window):
  """Encoder-decoder and LM: logits of the parallel pass == prefill(4) + one-token cached steps."""
  c, model = _tiny(task, row, window=window)
  b, s, t = 2, 7, 11
  batch = random_batch(task, b, s, t)
  variables = model.init(jax.random.PRNGKey(0), batch)
  full = model.apply(variables, batch)
  encoded = mask = None
  if task == 'translate':
    encoded = model.apply(variables, batch['inputs'], method=mdl.Transformer.encode)
    mask = batch['inputs'] != 0
  cache = model.apply(variables, b, t, encoded, mask, method=mdl.Transformer.init_cache)
  tokens = mdl.shift_right(jnp.asarray(batch['targets']))
  logits, cache = model.apply(variables, tokens[:, :4], cache, method=mdl.Transformer.step)
  pieces = [logits]
  for i in range(4, t):
    logits, cache = model.apply(variables, tokens[:, i:i + 1], cache, method=mdl.Transformer.step)
    pieces.append(logits)
  inc = jnp.concatenate(pieces, axis=1)
  err = float(jnp.max(jnp.abs(inc - full)) / jnp.max(jnp.abs(full)))
  assert err < 1e-5, err
  assert cache['state'][0]['key'].shape[1] == (window or t)


def test_packed_examples_do_not_see_each_other():
  """Two examples packed in one row give the same logits as each alone."""
  _, model = _tiny('translate', 'mqa')
  a_in, a_out = np.array([5, 6, 7, 1]), np.array([8, 9, 1])
  b_in, b_out = np.array([10, 11, 1]), np.array([12, 13, 14, 1])
  packed = {'inputs': np.array([np.r_[a_in, b_in, 0]]), 'inputs_segmentation': np.array([[1] * 4 + [2] * 3 + [0]]),
            'inputs_position': np.array([[0, 1, 2, 3, 0, 1, 2, 0]]),
            'targets': np.array([np.r_[a_out, b_out, 0]]), 'targets_segmentation': np.array([[1] * 3 + [2] * 4 + [0]]),
            'targets_position': np.array([[0, 1, 2, 0, 1, 2, 3, 0]])}
  packed = {k: v.astype(np.int32) for k, v in packed.items()}
  variables = model.init(jax.random.PRNGKey(0), packed)
  both = model.apply(variables, packed)
  alone_b = model.apply(variables, {'inputs': b_in[None].astype(np.int32), 'targets': b_out[None].astype(np.int32)})
  np.testing.assert_allclose(both[0, 3:7], alone_b[0], rtol=1e-5, atol=1e-5)
  alone_a = model.apply(variables, {'inputs': a_in[None].astype(np.int32), 'targets': a_out[None].astype(np.int32)})
  np.testing.assert_allclose(both[0, :3], alone_a[0], rtol=1e-5, atol=1e-5)


def test_convert_multi_head_checkpoint_to_grouped_query():
  c, mha = _tiny('lm', 'mha')
  batch = {'targets': np.ones((1, 4), np.int32)}
  params = mdl.nn.meta.unbox(mha.init(jax.random.PRNGKey(0), batch)['params'])
  gqa = mdl.convert_kv_heads(params, 2)
  k = params['decoder_0']['self_attn']['key']
  assert gqa['decoder_0']['self_attn']['key'].shape == (k.shape[0], 2, k.shape[2])
  np.testing.assert_allclose(gqa['decoder_0']['self_attn']['key'][:, 1], k[:, 4:].mean(1), rtol=1e-6)
  c2, gqa_model = _tiny('lm', 'mha', num_kv_heads=2)
  assert gqa_model.apply({'params': gqa}, batch).shape == (1, 4, c.model.vocab_size)
  with pytest.raises(ValueError, match='not divisible'):
    mdl.convert_kv_heads(params, 3)


@pytest.mark.parametrize('field,value,match', [
    ('num_kv_heads', 3, r'config.model.num_kv_heads \(3\)'),
    ('window', 0, 'config.model.window'),
    ('window', -2, 'config.model.window'),
    ('d_model', 0, 'config.model.d_model'),
    ('qk_dim', -8, 'config.model.qk_dim'),
    ('d_ff', 0, 'config.model.d_ff'),
])
def test_bad_configs_are_refused_naming_the_field(field, value, match):
  """validate() is pure Python on the config: it runs before any model is built or compiled."""
  c = cfg.row_config('translate', 'mha', 'tiny')
  c.model[field] = value
  with pytest.raises(ValueError, match=match):
    cfg.validate(c)


@pytest.mark.parametrize('path,value', [
    ('train.checkpoint_every', 0), ('train.log_every', 0), ('train.num_train_steps', 0),
    ('train.num_train_steps', -1), ('train.keep_checkpoints', 0), ('train.learning_rate', -1.0),
    ('train.learning_rate', 0.0), ('train.warmup_steps', -1), ('train.decay_steps', -5),
    ('train.label_smoothing', 1.0), ('train.z_loss', -1e-4), ('train.eval_every', -1),
    ('train.eval_steps', -1), ('train.grad_clip_norm', -1.0), ('train.adafactor_decay_rate', 0.0),
    ('train.prng_impl', 'philox'), ('train.optimizer', 'sgd'),
    ('train.log_every', True), ('train.learning_rate', float('nan')),
    ('data.batch_size', 0), ('data.eval_batch_size', 0), ('data.max_train_examples', -1),
    ('model.norm_eps', 0.0), ('model.dropout_rate', 1.0), ('mesh.data', 0), ('mesh.model', -2),
    ('decode.alpha', -0.5), ('decode.max_len_a', -1.0), ('decode.max_len_b', -3),
    ('decode.beam_size', 0), ('decode.batch_size', 0), ('decode.dtype', 'int8'),
])
def test_every_numeric_field_is_validated_naming_it(path, value):
  """Values that used to crash later (ZeroDivisionError), train nothing and exit 0, keep no
  checkpoint, or train backwards are refused by validate(), before anything compiles."""
  c = cfg.row_config('lm', 'mqa', 'tiny')
  group, field = path.split('.')
  c[group][field] = value
  with pytest.raises(ValueError, match=f'config.{path}'):
    cfg.validate(c)


def test_unknown_override_and_missing_file_say_what_to_change(tmp_path):
  with pytest.raises(ValueError, match='model has no field .*windw.*known fields:.*window'):
    cfg.load_config(str(cfg.config_file('lm', 'mqa')) + ':tiny', ['--config.model.windw=4'])
  with pytest.raises(FileNotFoundError, match='config file not found'):
    cfg.load_config(str(tmp_path / 'nope.py'))
  c = cfg.load_config(str(cfg.config_file('lm', 'mqa')) + ':tiny', ['--config.model.window=4',
                                                                   '--config.train.z_loss=0'])
  assert c.model.window == 4 and c.train.z_loss == 0.0 and c.name == 'lm_mqa_tiny'


def test_params_cli_json():
  out = subprocess.run([sys.executable, '-m', 'mqa_repro.cli', 'params', '--json'], check=True,
                       capture_output=True, text=True).stdout
  rows = {r['name']: r for r in json.loads(out)}
  assert rows['wmt_mqa']['d_ff'] == 5440 and rows['wmt_mqa']['g'] == 1
  assert rows['lm_h8_dk16']['d_k'] == 16 and rows['lm_h8_dk16']['d_ff'] == 9984
  assert all(abs(r['params'] - (211e6 if r['task'] == 'translate' else 192e6)) < 0.01 * 211e6
             for r in rows.values())
