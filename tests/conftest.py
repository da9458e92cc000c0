"""Shared test setup: exact float32 matmuls on CPU, the real data directory when present, and
subprocess checks run in the background while the in-process tests go on."""

import atexit
import concurrent.futures
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import jax
import pytest

# Exact float32 matmuls, here and in the subprocesses tests start (they inherit the variable): the
# precision is part of every compiled program, so with the same one both build the same programs.
os.environ['JAX_DEFAULT_MATMUL_PRECISION'] = 'highest'
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


def _data_path() -> Path:
  return Path(os.environ.get('MQA_REPRO_DATA', REPO.parent / 'shared' / 'data'))


def _have_data() -> bool:
  return (_data_path() / 'wmt14_en_de' / 'newstest2014.en').is_file()


@pytest.fixture(scope='session')
def shared_data() -> Path:
  """../shared/data (or $MQA_REPRO_DATA); tests that need real WMT/lm1b text skip without it."""
  if not _have_data():
    pytest.skip(f'real WMT14/lm1b files not found under {_data_path()}; set MQA_REPRO_DATA to '
                f'../shared/data')
  return _data_path()


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


# Background checks. A subprocess check (one JAX process compiling) keeps about one of the two
# cores busy, and so do the in-process tests: side by side each uses the cycles the other leaves.
# A test marked @pytest.mark.background(job=job) gets its subprocess from `background.result(job)`
# (or `.succeeded(job)`, which also asserts that it exited with 0); job(directory, data) ->
# (argv, subprocess options, 'timeout' among them) runs in a fresh directory, `data` = the
# shared_data path. Every selected test's jobs start when the session's first test starts, one at a
# time in the order of their tests, and those tests run last (in their order), so the jobs have the
# rest of the session to finish.


def _jobs(item) -> list:
  return [m.kwargs['job'] for m in item.iter_markers('background')]


def pytest_collection_modifyitems(items):
  items[:] = [i for i in items if not _jobs(i)] + [i for i in items if _jobs(i)]


class Background:
  """Runs the jobs' subprocesses one at a time in a worker thread, in the order they start."""

  def __init__(self, tmp_path_factory):
    self._tmp = tmp_path_factory
    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    self._runs = {}
    self._running = set()
    self._lock = threading.Lock()

  def start(self, job) -> None:
    if job not in self._runs:
      directory = self._tmp.mktemp(job.__name__)
      argv, options = job(directory, _data_path())
      self._runs[job] = directory, self._pool.submit(self._run, argv, dict(options))

  def result(self, job) -> tuple[Path, subprocess.CompletedProcess]:
    """(the job's directory, its finished process: text stdout and stderr, and the seconds it ran
    as `.seconds`), waiting for it (starting it first if it has not started)."""
    self.start(job)
    directory, future = self._runs[job]
    return directory, future.result()

  def succeeded(self, job) -> tuple[Path, subprocess.CompletedProcess]:
    """``result(job)``, failing the test with the end of its stderr unless it exited with 0."""
    directory, proc = self.result(job)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return directory, proc

  def _run(self, argv, options) -> subprocess.CompletedProcess:
    timeout = options.pop('timeout', 600)
    start = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **options)
    with self._lock:
      self._running.add(proc)
    try:
      out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
      proc.kill()
      out, err = proc.communicate()
      err += f'\n(killed after {timeout} s)'
    finally:
      with self._lock:
        self._running.discard(proc)
    done = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    done.seconds = time.time() - start
    return done

  def close(self) -> None:
    """Drops the jobs not started and kills the one running (a session cut short)."""
    self._pool.shutdown(wait=False, cancel_futures=True)
    with self._lock:
      for proc in self._running:
        proc.kill()


@pytest.fixture(scope='session')
def background(tmp_path_factory):
  runner = Background(tmp_path_factory)
  yield runner
  runner.close()


@pytest.fixture(scope='session', autouse=True)
def _start_background_jobs(request, background):
  for item in request.session.items:
    if 'shared_data' in item.fixturenames and not _have_data():
      continue                      # the test skips
    for job in _jobs(item):
      try:
        background.start(job)
      except Exception:
        pass                        # raised again where the test asks for the job's result
