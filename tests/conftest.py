"""Shared test setup: exact float32 matmuls on CPU, and the real data directory when present."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

jax.config.update('jax_default_matmul_precision', 'highest')

# One persistent compilation cache for the session, shared with the subprocesses tests start (they
# inherit the variable): the same tiny train and decode steps, built by many tests and CLI runs, are
# compiled once. It is new for every session (nothing compiled by older code is reused) unless
# JAX_COMPILATION_CACHE_DIR is set already.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _cache = tempfile.mkdtemp(prefix='mqa_repro_tests_jax_cache_')
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _cache
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.2')
jax.config.update('jax_compilation_cache_dir', os.environ['JAX_COMPILATION_CACHE_DIR'])
jax.config.update('jax_persistent_cache_min_compile_time_secs',
                  float(os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS']))

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='session')
def shared_data() -> Path:
  """../shared/data (or $MQA_REPRO_DATA); tests that need real WMT/lm1b text skip without it."""
  path = Path(os.environ.get('MQA_REPRO_DATA', REPO.parent / 'shared' / 'data'))
  if not (path / 'wmt14_en_de' / 'newstest2014.en').is_file():
    pytest.skip(f'real WMT14/lm1b files not found under {path}; set MQA_REPRO_DATA to ../shared/data')
  return path


@pytest.fixture(scope='session')
def lm_run(shared_data, tmp_path_factory):
  """(config, run directory) of a tiny LM trained two steps by `mqa-repro train` in this process,
  checkpoints at steps 1 and 2 saved asynchronously (the default); dev = 100 lm1b sentences.
  test_api and test_checkpoint each trained this same run; once is enough. Tests that change the
  run directory work on a copy."""
  from mqa_repro import cli
  from test_train import _train_args, tiny
  c = tiny('lm', 'mqa', shared_data, num_train_steps=2, checkpoint_every=1, async_checkpoint=True)
  workdir = tmp_path_factory.mktemp('lm_run')
  assert cli.main(_train_args(c, workdir)) == 0
  return c, workdir
