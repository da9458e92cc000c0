"""bench.lm_decode at tiny dims on the CPU: the CLI writes its JSON point by point and resumes; the
peers are skipped with a note without torch; the PyTorch peer decodes our tokens from our weights."""

import dataclasses
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from mqa_repro import cli
from mqa_repro.report import speed
from mqa_repro.decoding import search as decode_lib
from mqa_repro.nn import transformer as mdl
from mqa_repro.bench import lm_decode, peers
from mqa_repro.bench.models import init_params, no_eos_step
from mqa_repro.bench.timing import Budget

LM_ARGS = ['bench', '--size', 'tiny', '--parts', 'lm_decode', '--lm-variants', 'mqa', '--lm-batches', '1,2',
           '--lm-new-tokens', '4', '--peers', '', '--lm-repeats', '1', '--no-torch-probes', '--resume']


def test_cli_lm_decode_tiny_writes_json_and_resumes(tmp_path, capsys):
  out = tmp_path / 'lm.json'
  assert cli.main(LM_ARGS + ['--out', str(out)]) == 0
  result = json.loads(out.read_text())
  assert 'table2' not in result and 'sweeps' not in result   # lm_decode alone runs nothing else
  block = result['lm_decode']
  assert block['setting']['dims']['mqa']['num_kv_heads'] == 1
  assert [(p['system'], p['batch'], p['new_tokens']) for p in block['points']] == [('ours', 1, 4),
                                                                                   ('ours', 2, 4)]
  for p in block['points']:
    for key in ('us_per_token', 'ms_per_step', 'step_bytes', 'roofline_fraction',
                'sequential_roofline_fraction'):
      assert math.isfinite(p[key]) and p[key] > 0, key
    assert p['step_bytes'] == p['weight_bytes'] + p['kv_bytes']
    assert p['ms_per_step'] * 1e3 == pytest.approx(p['us_per_token'] * p['batch'])
  md = speed.lm_decode_table(result)
  assert any('ours (xla)' in line for line in md)
  # the same command again measures nothing new: every point is in the file already
  capsys.readouterr()
  assert cli.main(LM_ARGS + ['--out', str(out)]) == 0
  again = json.loads(out.read_text())
  assert again['lm_decode']['points'] == block['points'] and len(again['runs']) == 2
  assert 'lm_decode ours' not in capsys.readouterr().out


def test_time_budget_stops_before_a_point_and_other_settings_are_refused():
  hw = {'copy_GBps': 10.0, 'matmul_TFLOPs': 1.0}
  opts = lm_decode.LmDecodeOptions(batches=(1,), new_tokens=(4,), variants=('mqa',), peers=())
  budget = Budget(1e-9)
  block = lm_decode.run_lm_decode('tiny', hw, opts, lambda s: None, {},
                                  previous={'setting': {'size': 'tiny'}, 'points': []}, budget=budget)
  assert block['points'] == [] and '--resume' in budget.stopped
  with pytest.raises(ValueError, match='another setting'):
    lm_decode.run_lm_decode('tiny', hw, opts, lambda s: None, {}, previous={'setting': {'size': 'paper'}})


def test_ratios_pair_ours_with_each_peer():
  points = [{'system': 'ours', 'attention_impl': 'xla', 'variant': 'mqa', 'batch': 8, 'new_tokens': 128,
             'us_per_token': 2.0},
            {'system': 'hf', 'variant': 'mqa', 'batch': 8, 'new_tokens': 128, 'us_per_token': 8.0},
            {'system': 'torch', 'variant': 'mqa', 'batch': 8, 'new_tokens': 128, 'error': 'out of memory'}]
  [r] = lm_decode.ratios(points)
  assert (r['peer'], r['ours_over_peer']) == ('hf', 0.25)


def test_peers_are_skipped_with_a_note_without_torch(monkeypatch):
  monkeypatch.setattr(peers, '_torch', lambda: None)
  status = peers.status(['hf', 'torch'])
  assert not status['hf']['available'] and 'torch is not installed' in status['torch']['note']
  assert status['hf']['differences']
  with pytest.raises(ValueError, match='unknown peer'):
    peers.status(['vllm'])


def _tiny_lm(variant):
  spec = lm_decode.lm_spec(variant, 'tiny', 8)
  spec = dataclasses.replace(spec, dtype='float32', param_dtype='float32')
  model = mdl.Transformer(spec)
  return spec, model, init_params(model, 0, 8)


@pytest.mark.parametrize('variant', ['mqa', 'gqa2', 'mha'])
def test_torch_decoder_with_our_weights_decodes_our_greedy_tokens(variant):
  torch = pytest.importorskip('torch')
  from mqa_repro.bench import torch_lm
  spec, model, params = _tiny_lm(variant)
  b, n = 3, 8
  cache = model.apply({'params': params}, b, n, method=mdl.Transformer.init_cache)
  ours = np.asarray(decode_lib.greedy_search(no_eos_step(model), params, cache, b, n))
  tlm = torch_lm.load_jax_params(torch_lm.TorchLM(spec), params)
  tlm.setup(b, n)
  with torch.no_grad():
    theirs = torch_lm.greedy(tlm, tlm.step, b).numpy()
    tlm.reset()
    logits = tlm.logits(torch.full((b,), 2)).numpy()   # BOS at position 0
  np.testing.assert_array_equal(theirs, ours)
  want, _ = model.apply({'params': params}, jnp.full((b, 1), 2, jnp.int32),
                        model.apply({'params': params}, b, n, method=mdl.Transformer.init_cache),
                        method=mdl.Transformer.step)
  np.testing.assert_allclose(logits, np.asarray(want[:, 0]), rtol=1e-4, atol=1e-4)


def test_hf_peer_generates_exactly_n_tokens():
  pytest.importorskip('transformers')
  spec, _, _ = _tiny_lm('gqa2')
  peer = peers.make('hf', spec, None)
  row = peer.time(batch=2, new_tokens=4, repeats=1, warmup=0)
  peer.close()
  assert row['seconds'] > 0 and row['intermediate_size'] == round(2 * spec.d_ff / 3)


def test_profile_traces_each_of_our_points_and_says_where_a_step_goes(tmp_path, capsys):
  out = tmp_path / 'lm.json'
  args = [a for a in LM_ARGS if a != '--resume']
  args[args.index('1,2')] = '1'
  assert cli.main(args + ['--out', str(out), '--profile', str(tmp_path / 'trace')]) == 0
  [point] = json.loads(out.read_text())['lm_decode']['points']
  prof = point['profile']
  assert prof['kernels'] and prof['device_us_per_step'] > 0 and prof['categories']
  # the traced step is kept; on a CPU there is no device stream, so no busy share at all
  assert prof['traced_wall_us_per_step'] > 0 and 'device_busy_fraction' not in prof
  assert list((tmp_path / 'trace' / 'lm_kv1_b1_n4').rglob('perfetto_trace.json.gz'))
  assert 'lm_decode ours  mqa   B=1     N=4     profile:' in capsys.readouterr().out
