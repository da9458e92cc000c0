"""Two processes joined by jax.distributed on localhost (how a multi-host pod run starts) train and
decode exactly like one process driving the same two devices."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ARGS = ['-m', 'mqa_repro.cli', 'parallel-check', '--config', 'configs/wmt_mqa.py:tiny', '--steps', '2',
        '--layouts', 'data', '--decode-batch', '4']
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_processes_match_one_process_with_two_devices(tmp_path):
  one = subprocess.run([sys.executable, *ARGS, '--out', str(tmp_path / 'one.json')], cwd=REPO,
                       env=dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2'),
                       capture_output=True, text=True, timeout=600)
  assert one.returncode == 0, one.stderr[-2000:]
  port = _free_port()
  procs = [subprocess.Popen([sys.executable, *ARGS, '--out', str(tmp_path / f'p{i}.json')], cwd=REPO,
                            env=dict(os.environ, MQA_REPRO_DISTRIBUTED='1',
                                     MQA_REPRO_COORDINATOR=f'localhost:{port}',
                                     MQA_REPRO_NUM_PROCESSES='2', MQA_REPRO_PROCESS_ID=str(i)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  for p in procs:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
  single = json.loads((tmp_path / 'one.json').read_text())
  multi = json.loads((tmp_path / 'p0.json').read_text())      # process 0 writes the result
  assert not (tmp_path / 'p1.json').exists()
  a, b = single['checks']['data_float32'], multi['checks']['data_float32']
  assert a['processes'] == 1 and b['processes'] == 2 and a['devices'] == b['devices'] == 2
  np.testing.assert_allclose(b['losses'], a['losses'], rtol=1e-6)
  assert a['losses_match'] and multi['decode']['identical_hypotheses']


def test_compare_a_multiprocess_run_with_the_one_process_baselines():
  from mqa_repro.parallel_check import compare
  base = {'single_float32': {'losses': [2.0, 1.0]},
          'checks': {'data_bfloat16': {'tokens_per_s': 180.0, 'single_device_tokens_per_s': 100.0}}}
  run = {'checks': {'data_float32': {'losses': [2.0, 1.001], 'devices': 2},
                    'data_bfloat16': {'tokens_per_s': 150.0}}}
  got = compare(base, run)
  assert got['data_float32']['max_rel_loss_diff'] == pytest.approx(1e-3)
  assert got['data_bfloat16']['scaling_efficiency'] == pytest.approx(0.75)
