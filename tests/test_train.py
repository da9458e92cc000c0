"""Training: real steps, falling loss, 1 vs 8 devices, exact resume after SIGKILL, fault handling."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from mqa_repro.training import checkpoint as ckpt
from mqa_repro import cli
from mqa_repro import config as cfg
from mqa_repro import costs
from mqa_repro.training import trainer as train

REPO = Path(__file__).resolve().parent.parent


def tiny(task, row, data_dir, **train_overrides):
  """A tiny row on real text: newstest2013 (WMT dev) or the lm1b heldout shards."""
  c = cfg.row_config(task, row, 'tiny')
  c.data.source = 'text'
  if task == 'translate':
    c.data.train_files = str(data_dir / 'wmt14_en_de' / 'newstest2013')
    c.data.dev_files = str(data_dir / 'wmt14_en_de' / 'newstest2014')
  else:
    c.data.train_files = str(data_dir / 'lm1b' / 'news.en.heldout-00010+00011-of-00050.txt')
    c.data.dev_files = str(data_dir / 'lm1b' / 'news.en.heldout-00000-of-00050.first100.txt')
  c.data.vocab_size = 300
  c.data.batch_size = 8
  c.data.max_train_examples = 1500
  c.data.max_eval_examples = 64
  c.train.update(dict(num_train_steps=4, log_every=1, eval_every=0, checkpoint_every=1000,
                      progress=False, tensorboard=False, async_checkpoint=False))
  c.train.update(train_overrides)
  return c


def _overrides(c):
  """The same config as --config.* flags for a subprocess."""
  keys = {'data': ['source', 'train_files', 'dev_files', 'vocab_size', 'batch_size',
                   'max_train_examples', 'max_eval_examples'],
          'train': ['num_train_steps', 'log_every', 'eval_every', 'checkpoint_every', 'progress',
                    'tensorboard', 'async_checkpoint', 'keep_checkpoints', 'learning_rate',
                    'warmup_steps', 'decay_steps']}
  return [f'--config.{g}.{k}={c[g][k]}' for g, ks in keys.items() for k in ks]


# The rows of test_tensorboard_hparams_eval_curve_bleu_and_samples: the same model shapes, so the
# second test's train step comes from the session's compilation cache.
@pytest.mark.parametrize('task,row', [('translate', 'mqa'), ('lm', 'gqa2')])
def test_one_real_step_end_to_end(task, row, shared_data, tmp_path):
  c = tiny(task, row, shared_data, num_train_steps=4, eval_every=4)
  out = train.train_and_evaluate(c, tmp_path, log=lambda s: None)
  assert out['step'] == 4 and np.isfinite(out['train_loss'])
  assert np.isfinite(out['eval_ln_ppl'])
  if task == 'lm':
    assert out['eval_word_ppl'] > 1 and out['eval_words'] > 0
  records = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert [r['step'] for r in records] == [1, 2, 3, 4] and all('train_loss' in r for r in records)
  info = json.loads((tmp_path / 'model_info.json').read_text())
  assert info['params'] == costs.param_count(c.model, task)
  assert (tmp_path / 'config.json').is_file() and (tmp_path / 'vocab.model').is_file()
  assert ckpt.Checkpointer(tmp_path).steps() == [4]
  if task == 'translate':  # the checkpoint decodes the run's own dev split (decode --split)
    out = tmp_path / 'dev.hyp'
    assert cli.main(['decode', '--workdir', str(tmp_path), '--split', 'dev', '--output', str(out),
                     '--beam', '1', '--batch-size', '16']) == 0
    refs = (tmp_path / 'dev.hyp.ref').read_text().splitlines()
    assert len(out.read_text().splitlines()) == len(refs) == c.data.max_eval_examples


def sixty_steps(workdir, data):
  c = tiny('translate', 'mqa', data, num_train_steps=60, log_every=10)
  c.data.max_train_examples = 3000
  c.train.learning_rate = 0.02
  c.train.warmup_steps = 10      # 60 steps: about 7.5 -> 5.0 nats (150 steps reached 4.7)
  c.train.decay_steps = 20
  return _train_cmd(c, workdir), {}


@pytest.mark.slow
@pytest.mark.background(job=sixty_steps)
def test_loss_falls_on_real_text(shared_data, background):
  workdir, _ = background.succeeded(sixty_steps)
  losses = [json.loads(l)['train_nll'] for l in open(workdir / 'metrics.jsonl')]
  first, last = losses[0], np.mean(losses[-3:])
  assert first > 5.0 and last < first - 1.0, (first, losses)


SHARDED = r'''
import json, os, sys
os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=8'
import jax, numpy as np
sys.path.insert(0, os.environ['TESTS'])
from test_train import tiny
from mqa_repro.training.trainer import Trainer
from pathlib import Path
out = {}
for row in ('mha', 'mqa'):
  initial = None
  for mesh in ((1, 1, 1), (2, 2, 2)):
    c = tiny('translate', row, Path(os.environ['DATA']))
    c.model.dtype = 'float32'
    c.model.encoder_layers = c.model.decoder_layers = 1   # compiling is the cost; one layer shards alike
    c.mesh.data, c.mesh.fsdp, c.mesh.model = mesh
    tr = Trainer.from_config(c, f"{os.environ['WORK']}/{row}",
                             devices=jax.devices()[:int(np.prod(mesh))], log=lambda s: None)
    if initial is None:                   # initialized once, on one device (one compile fewer)
      initial = jax.device_get(tr.init_state())
    state, losses = jax.device_put(initial, tr.state_shardings), []
    for _, batch in zip(range(3), tr.data.train_batches(0)):
      with tr.context():
        state, m = tr.train_step(state, tr.to_global(batch))
      losses.append(float(m['loss']))
    key = state['params']['decoder_0']['self_attn']['key']
    out[f'{row}{mesh}'] = {'losses': losses, 'kv_spec': str(key.sharding.spec),
                           'devices': len(key.sharding.device_set)}
print('RESULT' + json.dumps(out))
'''


def sharded(workdir, data):
  env = dict(os.environ, TESTS=str(Path(__file__).parent), DATA=str(data), WORK=str(workdir))
  return [sys.executable, '-c', SHARDED], dict(env=env)


@pytest.mark.slow
@pytest.mark.background(job=sharded)
def test_one_device_and_eight_fake_devices_agree(shared_data, background):
  """data=2, fsdp=2, model=2 on 8 fake CPU devices vs 1 device: same losses to 1e-5 (float32)."""
  _, proc = background.succeeded(sharded)
  out = json.loads(proc.stdout.split('RESULT')[-1])
  for row in ('mha', 'mqa'):
    one, eight = out[f'{row}(1, 1, 1)'], out[f'{row}(2, 2, 2)']
    np.testing.assert_allclose(eight['losses'], one['losses'], rtol=1e-5)
    assert eight['devices'] == 8
  # multi-head K/V split over the model axis; the single multi-query K/V head is replicated on it
  assert out['mha(2, 2, 2)']['kv_spec'] in ("P('fsdp', 'model', None)", "PartitionSpec('fsdp', 'model', None)")
  assert out['mqa(2, 2, 2)']['kv_spec'] in ("P('fsdp', None, None)", "PartitionSpec('fsdp', None, None)")


def _train_args(c, workdir):
  """`mqa-repro train` of config `c`, for cli.main (in this process) or after _train_cmd's python."""
  return ['train', '--config', str(cfg.config_file(c.task, c.row)) + ':tiny', '--workdir',
          str(workdir), *_overrides(c)]


def _train_cmd(c, workdir):
  return [sys.executable, '-m', 'mqa_repro.cli', *_train_args(c, workdir)]


def _forty_steps(data):
  return tiny('translate', 'mqa', data, num_train_steps=40, checkpoint_every=8, keep_checkpoints=10)


def forty_steps(workdir, data):
  """The uninterrupted run, to compare the killed and resumed one with."""
  return _train_cmd(_forty_steps(data), workdir), {}


@pytest.mark.slow
@pytest.mark.background(job=forty_steps)
def test_sigkill_then_resume_is_bit_identical(shared_data, background, tmp_path):
  c = _forty_steps(shared_data)
  broken = tmp_path / 'broken'
  proc = subprocess.Popen(_train_cmd(c, broken), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  metrics = broken / 'metrics.jsonl'
  deadline = time.time() + 300
  while time.time() < deadline:
    if metrics.exists() and any(json.loads(l)['step'] >= 19 for l in metrics.read_text().splitlines()):
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = max(json.loads(l)['step'] for l in metrics.read_text().splitlines())
  assert 19 <= killed_at < 40, 'the run should die mid-way'
  subprocess.run(_train_cmd(c, broken), check=True, capture_output=True, timeout=600)
  whole, _ = background.succeeded(forty_steps)

  def last_losses(path):
    return {r['step']: r['train_loss'] for r in map(json.loads, path.read_text().splitlines())}
  a, b = last_losses(whole / 'metrics.jsonl'), last_losses(metrics)
  assert sorted(a) == sorted(b) == list(range(1, 41))
  assert a == b, 'losses differ step for step'
  _, pa, _ = ckpt.load_for_inference(whole, log=lambda s: None)
  _, pb, _ = ckpt.load_for_inference(broken, log=lambda s: None)
  for x, y in zip(jax.tree_util.tree_leaves(pa), jax.tree_util.tree_leaves(pb)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_corrupt_latest_checkpoint_falls_back(lm_run, tmp_path):
  """On a copy of conftest's tiny LM run (checkpoints at steps 1 and 2; training it again here
  would only repeat that)."""
  c, base = lm_run
  workdir = tmp_path / 'run'
  shutil.copytree(base, workdir)
  assert ckpt.Checkpointer(workdir).steps() == [1, 2]
  for f in (workdir / 'checkpoints' / '2' / 'params').rglob('*'):
    if f.is_file() and f.stat().st_size > 0:
      f.write_bytes(b'\0' * 7)                 # a disk fault: every file of the latest step garbled
  messages = []
  c = c.copy_and_resolve_references()
  c.train.num_train_steps = 3
  out = train.train_and_evaluate(c, workdir, log=messages.append)
  assert any('step 2' in m and 'falling back' in m for m in messages), messages
  assert any('resumed' in m and 'step 1' in m for m in messages), messages
  assert out['step'] == 3


def _nan_at_step_5(data):
  return tiny('translate', 'mha', data, num_train_steps=10, checkpoint_every=2, inject_nan_at_step=4)


def nan_on_the_command_line(workdir, data):
  return _train_cmd(_nan_at_step_5(data), workdir) + ['--config.train.inject_nan_at_step=4'], {}


@pytest.mark.background(job=nan_on_the_command_line)
def test_nan_loss_stops_and_keeps_last_good_checkpoint(shared_data, background, tmp_path):
  with pytest.raises(train.NonFiniteLoss, match='step 5.*last good checkpoint \\(step 4\\)'):
    train.train_and_evaluate(_nan_at_step_5(shared_data), tmp_path, log=lambda s: None)
  assert ckpt.Checkpointer(tmp_path).steps() == [2, 4]
  # the command line's exit code and message
  _, proc = background.result(nan_on_the_command_line)
  assert proc.returncode == 3 and 'loss is nan' in proc.stderr, proc.stderr[-3000:]


def _finite(workdir, step):
  _, params, _ = ckpt.load_for_inference(workdir, step=step, log=lambda s: None)
  return all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(params))


@pytest.mark.slow
@pytest.mark.filterwarnings('ignore:overflow encountered in cast')   # 1e39 as a float32 rate
def test_divergence_never_leaves_a_non_finite_checkpoint_and_a_lower_rate_recovers(shared_data,
                                                                                   lm_run, tmp_path,
                                                                                   capsys):
  """learning_rate 1e39 makes the parameters non-finite in one update while the loss of that step
  (computed before the update) is still finite: the guard must look at what is about to be saved."""
  c = tiny('lm', 'mqa', shared_data, num_train_steps=1, checkpoint_every=1, learning_rate=1e39)
  with pytest.raises(train.NonFiniteLoss, match='parameters.*step 1.*[Nn]o checkpoint'):
    train.train_and_evaluate(c, tmp_path / 'scratch', log=lambda s: None)
  assert ckpt.Checkpointer(tmp_path / 'scratch').steps() == []

  # steps 1, 2 at a sane rate: a copy of conftest's tiny LM run (checkpoints at both)
  c, base = lm_run
  workdir = tmp_path / 'run'
  shutil.copytree(base, workdir)
  c = c.copy_and_resolve_references()
  c.train.update(num_train_steps=4, learning_rate=1e39, async_checkpoint=False)
  with pytest.raises(train.NonFiniteLoss, match='step 3.*last good checkpoint \\(step 2\\)'):
    train.train_and_evaluate(c, workdir, log=lambda s: None)
  steps = ckpt.Checkpointer(workdir).steps()
  assert steps == [1, 2] and all(_finite(workdir, s) for s in steps)
  # the advice works: a lower learning rate (a train setting, not the model) resumes and finishes
  c.train.learning_rate = 0.005
  capsys.readouterr()
  rc = cli.main(_train_args(c, workdir) + ['--config.train.learning_rate=0.005'])   # in this process
  out, err = capsys.readouterr()
  assert rc == 0, err[-2000:]
  assert 'resumed' in out and 'at step 2' in out, out[-2000:]
  assert json.loads(out.splitlines()[-1])['step'] == 4 and _finite(workdir, 4)


PAPER_COMPILE = r'''
import os
os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=8'
import jax
from mqa_repro import config as cfg
from mqa_repro.training.trainer import Trainer
for task, row in (('translate', 'mqa'), ('lm', 'mha')):
  c = cfg.row_config(task, row)          # 211M / 192M parameters, batch 128 x 256
  tr = Trainer(c, '/tmp/unused', log=lambda s: None)
  lowered = tr.lower_train_step()        # shapes and shardings: where a config goes wrong
  if task == 'translate':                # XLA's compile of the larger graph (the LM's has the same
    lowered.compile()                    # layers, fewer of them)
  print(task, row, dict(tr.mesh.shape), 'ok')
'''


def paper_compile(workdir, data):
  # compiled once in the session: no use writing the paper-size executables to the shared cache
  env = {k: v for k, v in os.environ.items() if k != 'JAX_COMPILATION_CACHE_DIR'}
  return [sys.executable, '-c', PAPER_COMPILE], dict(env=env, timeout=900)


@pytest.mark.slow
@pytest.mark.background(job=paper_compile)
def test_paper_configs_compile_ahead_of_time_on_eight_devices(background):
  """The paper's train steps lower for data=8 on fake CPU devices, and the translation one compiles
  (nothing runs)."""
  _, proc = background.succeeded(paper_compile)
  assert proc.stdout.count('ok') == 2 and "'data': 8" in proc.stdout


@pytest.mark.parametrize('args,message', [
    (['--config', 'configs/nope.py'], 'config file not found'),
    (['--config', 'configs/wmt_mqa.py:tiny', '--config.model.windw=3'], 'known fields'),
    (['--config', 'configs/wmt_mqa.py:tiny', '--config.mesh.model=3'], 'config.mesh'),
    (['--config', 'configs/lm_mqa.py:tiny', '--config.train.checkpoint_every=0'],
     'config.train.checkpoint_every'),
    (['--config', 'configs/lm_mqa.py:tiny', '--config.train.num_train_steps=0'],
     'config.train.num_train_steps'),
])
def test_cli_errors_say_what_to_change(args, message, tmp_path, monkeypatch, capsys):
  """Exit 2 with the field to change, before any data is read or built (no vocabulary written; the
  mesh is checked before the offline corpus the config names is built)."""
  monkeypatch.chdir(REPO)
  rc = cli.main(['train', '--workdir', str(tmp_path / 'run'), *args])
  err = capsys.readouterr().err
  assert rc == 2 and message in err, err[-2000:]
  assert not (tmp_path / 'run' / 'vocab.model').exists()


@pytest.mark.parametrize('impl', ['rbg', 'threefry'])
def test_both_offered_dropout_rngs_train(impl, tmp_path):
  """config.train.prng_impl takes the two values its comment offers ('threefry' is JAX's
  'threefry2x32'); one step with dropout on runs with either."""
  c = cfg.row_config('lm', 'mqa', 'tiny')
  c.model.update(d_model=32, qk_dim=8, v_dim=8, d_ff=64, decoder_layers=1, vocab_size=128,
                 max_length=16, dropout_rate=0.1)
  c.data.update(batch_size=2, max_length=16)
  c.train.prng_impl = impl
  tr = train.Trainer(c, tmp_path, log=lambda s: None)
  from mqa_repro.nn import transformer as mdl
  batch = tr.to_global(mdl.dummy_batch('lm', 2, 16))
  with tr.context():
    _, out = tr.train_step(tr.init_state(), batch)
  assert np.isfinite(float(out['loss']))


def test_the_schedule_reaches_the_train_step_at_run_time(tmp_path):
  """The rate follows its formula, and the train step takes the schedule's numbers as an argument:
  configs that differ only in rate or step counts lower to one program (one compile serves them)."""
  t = cfg.row_config('lm', 'mqa', 'tiny').train
  t.update(learning_rate=0.02, warmup_steps=10, num_train_steps=60, decay_steps=20)
  rate = train.learning_rate_schedule(t)
  for step, want in ((0, 0.02), (10, 0.02), (40, 0.02 / 2), (50, 0.02 / 5 ** 0.5 * 0.5), (60, 0.0)):
    assert float(rate(step)) == pytest.approx(want, rel=1e-6), step
  t.decay_steps = 0
  assert float(train.learning_rate_schedule(t)(1000)) == pytest.approx(0.02 / 10, rel=1e-6)

  def lowered(**changes):
    c = cfg.row_config('lm', 'mqa', 'tiny')
    c.model.update(d_model=32, qk_dim=8, v_dim=8, d_ff=64, decoder_layers=1, vocab_size=128,
                   max_length=16)
    c.data.update(batch_size=2, max_length=16)
    c.train.update(changes)
    return train.Trainer(c, tmp_path, log=lambda s: None).lower_train_step().as_text()
  assert lowered() == lowered(learning_rate=0.5, num_train_steps=7, warmup_steps=3, decay_steps=2)
  assert lowered() != lowered(label_smoothing=0.2)     # (the comparison can tell programs apart)


def _events(directory):
  """{scalar tag: [(step, value)]}, {text tag: [(step, text)]}, {hparams tag: plugin content} of the
  TensorBoard event files under `directory` (tensorboard's own reader)."""
  pytest.importorskip('tensorboard')
  from tensorboard.backend.event_processing import event_accumulator as ea
  scalars, texts, hparams = {}, {}, {}
  for run in sorted({p.parent for p in Path(directory).rglob('events.out.tfevents.*')}):
    acc = ea.EventAccumulator(str(run), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    for tag in acc.Tags()['scalars']:
      scalars.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    for tag in acc.Tags()['tensors']:
      if acc.SummaryMetadata(tag).plugin_data.plugin_name == 'text':
        texts.setdefault(tag, []).extend((e.step, e.tensor_proto.string_val[0].decode())
                                         for e in acc.Tensors(tag))
    hparams.update(acc.PluginTagToContent('hparams'))
  return scalars, texts, hparams


@pytest.mark.parametrize('task,row', [('translate', 'mqa'), ('lm', 'gqa2')])
def test_tensorboard_hparams_eval_curve_bleu_and_samples(task, row, shared_data, tmp_path):
  pytest.importorskip('tensorboardX')
  c = tiny(task, row, shared_data, num_train_steps=4, eval_every=2, log_every=2, tensorboard=True,
           tb_bleu_sentences=6, tb_samples=2)
  out = train.train_and_evaluate(c, tmp_path, log=lambda s: None)
  scalars, texts, hparams = _events(tmp_path / 'tb')
  # the eval curve: dev ln(PPL) at every eval_every step (and the same in metrics.jsonl)
  assert [s for s, _ in scalars['eval/dev_ln_ppl']] == [2, 4]
  assert np.isclose(scalars['eval/dev_ln_ppl'][-1][1], out['eval_ln_ppl'], rtol=1e-5)
  assert [s for s, _ in scalars['train/loss']] == [1, 2, 4]
  # text samples at each eval step: a markdown table with one row per sample
  assert [s for s, _ in texts['samples/dev/text_summary']] == [2, 4]
  table = texts['samples/dev/text_summary'][-1][1].splitlines()
  assert len(table) == 2 + 2
  # hparams: the flattened config at the start, the final metrics at the end
  from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
  start = HParamsPluginData.FromString(hparams['_hparams_/session_start_info']).session_start_info
  assert start.hparams['row'].string_value == row
  assert start.hparams['model.num_kv_heads'].number_value == c.model.num_kv_heads
  assert start.hparams['train.learning_rate'].number_value == c.train.learning_rate
  assert start.hparams['train.seed'].number_value == 0
  end = HParamsPluginData.FromString(hparams['_hparams_/session_end_info']).session_end_info
  assert end.status == 1   # STATUS_SUCCESS
  experiment = HParamsPluginData.FromString(hparams['_hparams_/experiment']).experiment
  metric_tags = {m.name.tag for m in experiment.metric_infos}
  assert np.isclose(scalars['hparams/dev_ln_ppl'][-1][1], out['eval_ln_ppl'], rtol=1e-5)
  if task == 'translate':
    assert 'source' in table[0] and 'greedy translation' in table[0]
    bleu = scalars['eval/dev_sample_bleu']
    assert [s for s, _ in bleu] == [2, 4] and all(0.0 <= v <= 100.0 for _, v in bleu)
    assert 'hparams/dev_sample_bleu' in metric_tags and 'hparams/dev_sample_bleu' in scalars
    assert out['eval_sample_bleu'] == pytest.approx(bleu[-1][1], rel=1e-5)
  else:
    assert 'prompt' in table[0] and 'eval/dev_sample_bleu' not in scalars
    assert 'hparams/dev_word_ppl' in metric_tags and 'hparams/dev_sample_bleu' not in metric_tags


def test_without_tensorboardx_one_clear_line(tmp_path, monkeypatch):
  monkeypatch.setattr(train, '_tensorboardx', lambda: None)
  logs = []
  reporter = train.Reporter(tmp_path, 2, True, False, logs.append)
  reporter.hparams_start(cfg.row_config('translate', 'mqa', 'tiny'))
  reporter.write(1, {'train_loss': 1.0})
  reporter.text(1, 'samples/dev', 'x')
  reporter.hparams_end(1, {'train_loss': 1.0})
  reporter.close()
  assert len(logs) == 1 and 'tensorboardX not installed' in logs[0] and 'viz' in logs[0]
  assert not (tmp_path / 'tb').exists() and (tmp_path / 'metrics.jsonl').is_file()
  assert train.tb_tag('eval_ln_ppl') == 'eval/dev_ln_ppl' and train.tb_tag('train_loss') == 'train/loss'
  flat = train.flat_hparams(cfg.row_config('lm', 'mqa', 'tiny'))
  assert flat['row'] == 'mqa' and flat['model.num_kv_heads'] == 1 and flat['model.window'] == 'None'
  assert flat['train.learning_rate'] == 0.01 and 'mesh.rules' not in flat
