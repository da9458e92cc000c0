"""Checkpoints: an integrity record checked by every load, and restores across device counts."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from mqa_repro import cli
from mqa_repro.training import checkpoint as ckpt
from mqa_repro.training import trainer as train
from test_train import _train_cmd, tiny

EIGHT = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8')
PROMPTS = 'The government said on Monday\nIt is not clear whether\n'


def _decode(workdir, tmp_path, capsys):
  """`mqa-repro decode` of two prompts in this (one-device) process -> (hypotheses, stderr)."""
  src = tmp_path / 'prompts.txt'
  src.write_text(PROMPTS)
  rc = cli.main(['decode', '--workdir', str(workdir), '--input', str(src), '--output',
                 str(tmp_path / 'hyp.txt'), '--beam', '1', '--max-new-tokens', '6'])
  err = capsys.readouterr().err
  assert rc == 0, err
  return (tmp_path / 'hyp.txt').read_text(), err


@pytest.fixture
def run(lm_run):
  """conftest's tiny LM run: checkpoints at steps 1 and 2, saved asynchronously (the default)."""
  return lm_run


def _largest_file(step_dir):
  return max((p for p in step_dir.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)


def _overwrite_64_bytes(step_dir):
  path = _largest_file(step_dir)
  data = bytearray(path.read_bytes())
  middle = len(data) // 2
  data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
  path.write_bytes(bytes(data))                     # same size, different bytes
  return path


def _delete_metadata(step_dir):
  path = step_dir / 'params' / '_METADATA'
  path.unlink()
  return path


def test_every_step_carries_a_sha256_record_of_its_files(run):
  _, workdir = run
  for step in (1, 2):
    step_dir = workdir / 'checkpoints' / str(step)
    listed = {line.split('  ', 1)[1] for line in (step_dir / ckpt.INTEGRITY_FILE).read_text().splitlines()}
    files = {p.relative_to(step_dir).as_posix() for p in step_dir.rglob('*') if p.is_file()}
    assert listed == files - {ckpt.INTEGRITY_FILE} and 'params/_METADATA' in listed
    assert ckpt.verify_integrity(step_dir)


def test_a_step_without_a_record_loads_with_a_message_not_silently(run, tmp_path):
  """Written before records existed, or killed between orbax's commit and the record."""
  _, base = run
  workdir = tmp_path / 'run'
  shutil.copytree(base, workdir)
  (workdir / 'checkpoints' / '2' / ckpt.INTEGRITY_FILE).unlink()
  messages = []
  ckpt.load_for_inference(workdir, log=messages.append)
  assert any('step 2' in m and 'unverified' in m for m in messages), messages
  assert messages[-1] == f'loaded {workdir} step 2'


@pytest.mark.parametrize('damage', [_overwrite_64_bytes, _delete_metadata])
def test_a_damaged_step_makes_decode_and_train_fall_back_naming_the_file(damage, run, tmp_path,
                                                                          capsys):
  """64 bytes flipped inside the step's largest file (orbax reads it back without complaint), or
  its params/_METADATA deleted (train's explicit restore targets need no metadata): both loads
  check the record, name the file and take step 1."""
  c, base = run
  workdir = tmp_path / 'run'
  shutil.copytree(base, workdir)
  damaged = damage(workdir / 'checkpoints' / '2')
  _, err = _decode(workdir, tmp_path, capsys)
  assert 'step 2' in err and str(damaged) in err and 'falling back' in err, err
  assert f'loaded {workdir} step 1' in err, err
  assert ckpt.Checkpointer(workdir).steps() == [1, 2]          # inference moves nothing

  messages = []
  c = c.copy_and_resolve_references()
  c.train.num_train_steps = 3
  out = train.train_and_evaluate(c, workdir, log=messages.append)
  assert any(str(damaged) in m and 'falling back' in m for m in messages), messages
  assert any('resumed' in m and 'at step 1' in m for m in messages), messages
  assert out['step'] == 3 and ckpt.Checkpointer(workdir).steps() == [1, 2, 3]
  assert ckpt.verify_integrity(workdir / 'checkpoints' / '2')  # rewritten by the resumed run


def eight_device_run(workdir, data):
  """conftest's tiny LM run (2 steps, checkpoints at 1 and 2) over data=2 x fsdp=2 x model=2 fake
  devices."""
  c = tiny('lm', 'mqa', data, num_train_steps=2, checkpoint_every=1, async_checkpoint=True)
  return _train_cmd(c, workdir) + ['--config.mesh.fsdp=2', '--config.mesh.model=2'], dict(env=EIGHT)


@pytest.mark.slow
@pytest.mark.background(job=eight_device_run)
def test_a_checkpoint_written_on_eight_devices_decodes_and_evaluates_on_one(shared_data, background,
                                                                            tmp_path, capsys):
  """Trained over data=2 x fsdp=2 x model=2 fake devices: its arrays' saved shardings name eight
  devices, which this process does not have."""
  workdir, _ = background.succeeded(eight_device_run)
  assert json.loads((workdir / 'model_info.json').read_text())['mesh'] == {'data': 2, 'fsdp': 2,
                                                                          'model': 2}
  hyps, err = _decode(workdir, tmp_path, capsys)
  assert f'loaded {workdir} step 2' in err and len(hyps.splitlines()) == 2, err
  assert cli.main(['evaluate', '--workdir', str(workdir), '--split', 'dev']) == 0
  assert 'ln(PPL) per subword' in capsys.readouterr().out


ON_EIGHT = r'''
import json, sys
import jax, numpy as np
from mqa_repro import cli
from mqa_repro.training import checkpoint as ckpt, sharding
workdir, prompts, out = sys.argv[1:]
assert jax.device_count() == 8
config, one, _ = ckpt.load_for_inference(workdir)
config.mesh.update(data=1, fsdp=2, model=4)
_, split, _ = ckpt.load_for_inference(workdir, mesh=sharding.make_mesh(config.mesh))
leaves = list(zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(split)))
print('RESULT' + json.dumps({'same': all(np.array_equal(a, b) for a, b in leaves),
                             'devices': max(len(b.sharding.device_set) for _, b in leaves)}))
sys.exit(cli.main(['decode', '--workdir', workdir, '--input', prompts, '--output', out, '--beam', '1',
                   '--max-new-tokens', '6']))
'''


def test_a_checkpoint_written_on_one_device_loads_on_eight(run, tmp_path, capsys):
  """The other way round: onto the first of eight devices, or sharded over an fsdp=2 x model=4
  mesh; both hold the saved values, and decoding there gives this process's hypotheses."""
  _, workdir = run
  here, _ = _decode(workdir, tmp_path, capsys)
  proc = subprocess.run([sys.executable, '-c', ON_EIGHT, str(workdir), str(tmp_path / 'prompts.txt'),
                         str(tmp_path / 'hyp8.txt')], env=EIGHT, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.split('RESULT')[-1].splitlines()[0])
  assert result == {'same': True, 'devices': 8}
  assert (tmp_path / 'hyp8.txt').read_text() == here
