"""Run directories through etils.epath: local paths, epath.Path objects, gs:// (on a fake bucket:
epath's own mock backend with gs:// mapped onto a local folder), and a clear error for anything else."""

import contextlib
import json
import os

import numpy as np
import pytest
from etils import epath

from mqa_repro import cli
from mqa_repro import config as cfg
from mqa_repro import paths
from mqa_repro.training import checkpoint as ckpt
from mqa_repro.training import trainer as train


@contextlib.contextmanager
def fake_gcs(root):
  """gs://BUCKET/... read and written under root/BUCKET/... through epath (etils.epath.testing):
  every backend call gets its gs:// arguments mapped onto the folder, and listings mapped back."""
  from etils.epath import gpath, testing
  prefix = 'gs://'

  def local(p):
    text = os.fspath(p)
    return str(root / text[len(prefix):]) if text.startswith(prefix) else p

  def remote(p):
    text = os.fspath(p)
    return prefix + os.path.relpath(text, root) if text.startswith(str(root)) else text

  def mapped(original, path, *args, **kwargs):
    return original(local(path), *[local(a) if isinstance(a, str) else a for a in args], **kwargs)

  def glob(original, pattern):
    return [remote(p) for p in original(local(pattern))]

  def walk(original, path, **kwargs):
    for top, dirs, files in original(local(path), **kwargs):
      yield remote(top), dirs, files

  fns = {name: mapped for name in ('copy', 'exists', 'isdir', 'listdir', 'makedirs', 'mkdir', 'open',
                                   'remove', 'rename', 'replace', 'rmtree', 'stat')}
  # TensorFlow being installed makes epath send gs:// to tf.io.gfile; the mock replaces the others.
  with testing.mock_epath(glob=glob, walk=walk, **fns), \
       pytest.MonkeyPatch.context() as mp:
    mp.setattr(gpath, '_is_tf_installed', lambda: False)
    yield


def test_run_path_accepts_local_epath_and_gs_and_names_the_flag(tmp_path, monkeypatch):
  monkeypatch.setenv('HOME', str(tmp_path))
  assert isinstance(paths.run_path(str(tmp_path)), epath.Path)
  assert os.fspath(paths.run_path('~/run')) == str(tmp_path / 'run')
  given = epath.Path(tmp_path)
  assert paths.run_path(given) is given
  assert os.fspath(paths.run_path('gs://bucket/run') / 'config.json') == 'gs://bucket/run/config.json'
  assert not paths.is_local('gs://bucket/run') and paths.is_local(tmp_path)
  with pytest.raises(ValueError, match=r'--workdir s3://bucket/run: the s3:// scheme is not supported'):
    paths.run_path('s3://bucket/run')
  with pytest.raises(ValueError, match=r'--results gs://bucket/r: mqa-repro reproduce needs a local'):
    paths.require_local('gs://bucket/r', '--results', 'mqa-repro reproduce')


@pytest.mark.parametrize('command', [
    ['train', '--config', 'configs/wmt_mqa.py:tiny', '--workdir', 'az://container/run'],
    ['decode', '--workdir', 'hf://x/run', '--input', 'pyproject.toml'],
    ['evaluate', '--workdir', 's3://bucket/run'],
    ['reproduce', '--preset', 'smoke', '--results', 'gs://bucket/results', '--skip-bench'],
    ['reproduce', '--preset', 'smoke', '--workdirs', 'gs://bucket/work', '--skip-bench'],
])
def test_unsupported_location_is_one_clear_error_naming_the_flag(command, capsys):
  assert cli.main(command) != 0
  err = capsys.readouterr().err
  flag = next(a for a in command if a in ('--workdir', '--results', '--workdirs'))
  assert flag in err and ('not supported' in err or 'needs a local directory' in err), err
  assert 'Traceback' not in err


def test_a_finished_run_loads_through_epath_paths(shared_data, tmp_path):
  """Training and inference take epath.Path run directories (what a gs:// --workdir becomes)."""
  from test_train import tiny
  c = tiny('lm', 'mqa', shared_data, num_train_steps=2, eval_every=0)
  workdir = epath.Path(tmp_path) / 'run'
  train.train_and_evaluate(c, workdir, log=lambda s: None)
  assert ckpt.latest_step(workdir) == 2
  assert ckpt.saved_config(workdir).model.to_dict() == cfg.validate(c).model.to_dict()
  config, params, tokenizer = ckpt.load_for_inference(workdir, log=lambda s: None)
  assert tokenizer.vocab_size <= config.model.vocab_size and params


def test_gs_workdir_on_a_fake_bucket(shared_data, tmp_path, monkeypatch):
  """What goes through epath for a gs:// run: the vocabulary (trained locally, copied up), the
  saved config, metrics.jsonl and TensorBoard (staged locally, copied up); the token caches stay
  local. (Orbax's arrays go through tensorstore, which a fake bucket cannot reach: not tested.)"""
  from mqa_repro.data.pipeline import load_task_data
  from test_train import tiny
  bucket = tmp_path / 'bucket_root'
  bucket.mkdir()
  monkeypatch.setenv('MQA_REPRO_CACHE', str(tmp_path / 'cache'))
  c = tiny('translate', 'mqa', shared_data)
  run = 'gs://bucket/run'
  with fake_gcs(bucket):
    data = load_task_data(c.task, c.data, run, log=lambda s: None)
    assert (bucket / 'bucket' / 'run' / 'vocab.model').is_file()
    assert data.tokenizer.model_path == f'{run}/vocab.model'
    assert str(data.cache_dir).startswith(str(tmp_path / 'cache'))
    next(data.train_batches(0))                 # tokenizes into the local cache
    assert any((tmp_path / 'cache' / 'data_cache').iterdir())
    again = load_task_data(c.task, c.data, run, log=lambda s: None)   # the bucket's vocabulary
    assert again.tokenizer.fingerprint == data.tokenizer.fingerprint

    workdir = paths.run_path(run)
    (workdir / 'config.json').write_text(ckpt.config_to_json(c))
    assert ckpt.saved_config(run).name == c.name

    pytest.importorskip('tensorboardX')
    reporter = train.Reporter(workdir, 2, True, False, lambda s: None)
    reporter.hparams_start(c)
    reporter.write(1, {'train_loss': 5.0})
    reporter.write(2, {'train_loss': 4.0, 'eval_ln_ppl': 4.5})
    reporter.text(2, 'samples/dev', '| a | b |\n|---|---|\n| x | y |')
    reporter.hparams_end(2, {'eval_ln_ppl': 4.5, 'train_loss': 4.0})
    reporter.close()
    lines = (workdir / 'metrics.jsonl').read_text().splitlines()
    assert [json.loads(l)['step'] for l in lines] == [1, 2]
    # a resumed run appends to the bucket's metrics.jsonl
    reporter = train.Reporter(workdir, 3, False, False, lambda s: None)
    reporter.write(3, {'train_loss': 3.0})
    reporter.close()
    assert len((workdir / 'metrics.jsonl').read_text().splitlines()) == 3

    # a checkpoint step's integrity record, written and checked in the bucket
    step = workdir / 'checkpoints' / '2'
    (step / 'params').mkdir(parents=True)
    (step / 'params' / 'a').write_bytes(b'123')
    ckpt.write_integrity(step)
    assert ckpt.verify_integrity(step)
    (step / 'params' / 'a').write_bytes(b'124')
    with pytest.raises(ckpt.CorruptCheckpoint, match='does not match'):
      ckpt.verify_integrity(step)
    assert ckpt.latest_step(run) == 2
  events = list((bucket / 'bucket' / 'run' / 'tb').rglob('events.out.tfevents.*'))
  assert events and all(e.stat().st_size > 0 for e in events)
  from test_train import _events
  scalars, texts, hparams = _events(bucket / 'bucket' / 'run' / 'tb')
  assert scalars['eval/dev_ln_ppl'] == [(2, 4.5)] and 'samples/dev/text_summary' in texts
  assert '_hparams_/session_end_info' in hparams
  assert np.isclose(scalars['hparams/dev_ln_ppl'][0][1], 4.5)
