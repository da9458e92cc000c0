"""Shared test setup: exact float32 matmuls on CPU, and the real data directory when present."""

import os
from pathlib import Path

import jax
import pytest

jax.config.update('jax_default_matmul_precision', 'highest')

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='session')
def shared_data() -> Path:
  """../shared/data (or $MQA_REPRO_DATA); tests that need real WMT/lm1b text skip without it."""
  path = Path(os.environ.get('MQA_REPRO_DATA', REPO.parent / 'shared' / 'data'))
  if not (path / 'wmt14_en_de' / 'newstest2014.en').is_file():
    pytest.skip(f'real WMT14/lm1b files not found under {path}; set MQA_REPRO_DATA to ../shared/data')
  return path
