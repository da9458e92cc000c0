"""Two processes joined by jax.distributed on localhost (how a multi-host pod run starts) train and
decode exactly like one process driving the same two devices."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

# Small dims: compiling, not the arithmetic, is the cost, and the checks do not depend on the size.
ARGS = ['-m', 'mqa_repro.cli', 'parallel-check', '--config', 'configs/wmt_mqa.py:tiny', '--steps', '2',
        '--layouts', 'data', '--decode-batch', '4', '--config.model.encoder_layers=1',
        '--config.model.decoder_layers=1', '--config.model.d_model=32', '--config.model.d_ff=64',
        '--config.model.vocab_size=128', '--config.data.max_length=16', '--config.data.batch_size=4']
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def one_process(workdir, data):
  """The one-process run on two devices the two processes are compared with."""
  return [sys.executable, *ARGS, '--config.model.dtype=float32', '--out', str(workdir / 'one.json')], \
      dict(cwd=REPO, env=dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2'))


@pytest.mark.slow
@pytest.mark.background(job=one_process)
def test_two_processes_match_one_process_with_two_devices(background, tmp_path):
  """All runs are float32, whose loss check is also their speed measurement (one entry,
  data_float32, holds both; a bfloat16 config's separate speed runs are
  test_a_bfloat16_config_is_timed_apart_from_its_float32_loss_check's)."""
  port = _free_port()
  procs = [subprocess.Popen([sys.executable, *ARGS, '--config.model.dtype=float32',
                             '--out', str(tmp_path / f'p{i}.json')], cwd=REPO,
                            env=dict(os.environ, MQA_REPRO_DISTRIBUTED='1',
                                     MQA_REPRO_COORDINATOR=f'localhost:{port}',
                                     MQA_REPRO_NUM_PROCESSES='2', MQA_REPRO_PROCESS_ID=str(i)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  for p in procs:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
  one, _ = background.succeeded(one_process)
  single = json.loads((one / 'one.json').read_text())
  multi = json.loads((tmp_path / 'p0.json').read_text())      # process 0 writes the result
  assert not (tmp_path / 'p1.json').exists()
  a, b = single['checks']['data_float32'], multi['checks']['data_float32']
  assert a['processes'] == 1 and b['processes'] == 2 and a['devices'] == b['devices'] == 2
  np.testing.assert_allclose(b['losses'], a['losses'], rtol=1e-6)
  assert a['losses_match'] and multi['decode']['identical_hypotheses']
  assert a['scaling_efficiency'] > 0 and a['single_device_tokens_per_s'] > 0
  assert b['tokens_per_s'] > 0 and b['scaling_efficiency'] is None   # no 1-device baseline there


def test_a_bfloat16_config_is_timed_apart_from_its_float32_loss_check(monkeypatch):
  """run_checks' bookkeeping, with the training and decoding replaced by records of the calls:
  losses are checked in float32 for every config; a bfloat16 config's throughput comes from runs
  in bfloat16 (its own 1-device baseline too), a float32 config's from the loss check itself."""
  from mqa_repro.training import parallel_check as pc
  calls = []

  def run_layout(config, layout, batches, devices=None, timed_steps=10):
    calls.append((layout, config.model.dtype, len(batches)))
    speed = {'float32': 100.0, 'bfloat16': 300.0}[config.model.dtype] * (2 if layout == 'data' else 1)
    return {'layout': layout, 'devices': 2 if layout == 'data' else 1, 'processes': 1,
            'losses': [2.0, 1.5, 1.25], 'tokens_per_s': speed, 'step_s': 1 / speed}
  monkeypatch.setattr(pc, 'run_layout', run_layout)
  monkeypatch.setattr(pc, 'decode_check', lambda *a: {'identical_hypotheses': True})
  spec = str(REPO) + '/configs/wmt_mqa.py:tiny'
  bf16 = pc.run_checks(spec, [], ['data'], steps=3)
  assert calls == [('single', 'float32', 3), ('single', 'bfloat16', 2), ('data', 'float32', 3),
                   ('data', 'bfloat16', 2)]
  assert set(bf16['checks']) == {'data_float32', 'data_bfloat16'}
  assert bf16['checks']['data_float32']['losses_match']
  speed = bf16['checks']['data_bfloat16']
  assert speed['tokens_per_s'] == 600.0 and speed['single_device_tokens_per_s'] == 300.0
  assert speed['scaling_efficiency'] == pytest.approx(600.0 / (300.0 * 2))
  calls.clear()
  f32 = pc.run_checks(spec, ['--config.model.dtype=float32'], ['data'], steps=3)
  assert calls == [('single', 'float32', 3), ('data', 'float32', 3)]
  [entry] = f32['checks'].values()
  assert entry['losses_match'] and entry['scaling_efficiency'] == pytest.approx(200.0 / (100.0 * 2))


def test_compare_a_multiprocess_run_with_the_one_process_baselines():
  from mqa_repro.training.parallel_check import compare
  base = {'single_float32': {'losses': [2.0, 1.0]},
          'checks': {'data_bfloat16': {'tokens_per_s': 180.0, 'single_device_tokens_per_s': 100.0}}}
  run = {'checks': {'data_float32': {'losses': [2.0, 1.001], 'devices': 2},
                    'data_bfloat16': {'tokens_per_s': 150.0}}}
  got = compare(base, run)
  assert got['data_float32']['max_rel_loss_diff'] == pytest.approx(1e-3)
  assert got['data_bfloat16']['scaling_efficiency'] == pytest.approx(0.75)


ON_A_MESH = r'''
import json, os, sys
os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2'
import jax, numpy as np
sys.path.insert(0, os.environ['TESTS'])
from test_decode import _tiny
from test_evaluate import _FakeData, _packed_batch
from mqa_repro.data.tokenizer import train_sentencepiece
from mqa_repro.decoding import text
from mqa_repro.evaluation.perplexity import perplexity
from mqa_repro.training import checkpoint, sharding
assert jax.device_count() == 2
rng = np.random.default_rng(0)
words = [''.join(rng.choice(list('abcdefghijklmnop'), rng.integers(2, 7))) for _ in range(60)]
lines = [' '.join(rng.choice(words, rng.integers(1, 9))) for _ in range(40)]
tok = train_sentencepiece(lines * 5, 100, os.environ['WORK'] + '/vocab.model')
out = {}
for task, row in (('translate', 'mqa'), ('lm', 'gqa2')):
  c, model, params = _tiny(task, row, vocab=128, max_length=24)
  mesh = sharding.make_mesh(c.mesh)
  placed = jax.device_put(params, jax.tree_util.tree_map(
      lambda a: a.sharding, checkpoint.abstract_params(c, mesh)))
  for beam in (1, 2):
    kw = dict(beam_size=beam, batch_size=4, max_new_tokens=5, log=lambda m: None)
    one, _ = text.decode_lines(c, params, tok, lines, **kw)
    split, _ = text.decode_lines(c, placed, tok, lines, mesh=mesh, **kw)
    out[f'{task} beam {beam} same'] = one == split
  batches = [_packed_batch(task, rng) for _ in range(3)]
  a = perplexity(c, params, _FakeData(batches, words=10), 'dev')
  b = perplexity(c, placed, _FakeData(batches, words=10), 'dev', mesh=mesh)
  out[f'{task} ppl'] = [a['ln_ppl_per_subword'], b['ln_ppl_per_subword']]
  out[f'{task} devices'] = len(placed['decoder_0']['self_attn']['key'].sharding.device_set)
print('RESULT' + json.dumps(out))
'''


def on_a_mesh(workdir, data):
  return [sys.executable, '-c', ON_A_MESH], dict(cwd=REPO, env=dict(
      os.environ, TESTS=os.path.join(REPO, 'tests'), WORK=str(workdir)))


@pytest.mark.slow
@pytest.mark.background(job=on_a_mesh)
def test_scoring_and_decoding_on_a_mesh_equal_one_device(background):
  """What reproduce does after training on a mesh: the parameters stay sharded over it, and the
  perplexity and the hypotheses (greedy and beam, translation and LM) equal a one-device run's."""
  _, proc = background.succeeded(on_a_mesh)
  out = json.loads(proc.stdout.split('RESULT')[-1].splitlines()[0])
  for task in ('translate', 'lm'):
    assert out[f'{task} beam 1 same'] and out[f'{task} beam 2 same']
    np.testing.assert_allclose(*out[f'{task} ppl'], rtol=1e-6)
    assert out[f'{task} devices'] == 2
