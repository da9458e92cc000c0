"""The TFDS source on ``tfds.testing.mock_data`` for both builders, end to end to a packed batch.

These run (not skip) wherever the ``tfds`` extra is installed, CI included; without it they skip.
"""

import sys
import tempfile

import numpy as np
import pytest

tfds = pytest.importorskip('tensorflow_datasets', reason="the tfds extra is not installed "
                           "(pip install 'mqa_repro[tfds]')")

from mqa_repro.data import pipeline, tfds_source  # noqa: E402


@pytest.fixture(autouse=True)
def _private_tempdir(tmp_path, monkeypatch):
  """tfds leaves an empty temp dir per builder (a failed metadata fetch from GCS): keep them in tmp_path."""
  monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))


def tfds_config(task: str):
  c = pipeline.default_data_config(task)
  c.source = 'tfds'
  c.vocab_size, c.max_length, c.batch_size, c.eval_batch_size = 64, 32, 4, 4
  return c


def test_wmt14_is_english_to_german_and_packs(tmp_path):
  with tfds.testing.mock_data(num_examples=40):
    data = pipeline.load_task_data('translate', tfds_config('translate'), tmp_path, log=lambda m: None)
    batch = next(data.train_batches())
    src, ref = data.eval_texts('dev')
    raw = list(tfds.as_numpy(tfds.load('wmt14_translate/de-en', split='validation')))
  assert set(batch) == {'inputs', 'inputs_segmentation', 'inputs_position',
                        'targets', 'targets_segmentation', 'targets_position'}
  assert all(v.shape == (4, 32) and v.dtype == np.int32 for v in batch.values())
  assert batch['inputs_segmentation'].max() >= 1 and batch['targets_segmentation'].max() >= 1
  # input = English, target = German (the paper's direction); 'dev' = tfds 'validation'.
  assert src == [ex['en'].decode() for ex in raw] and ref == [ex['de'].decode() for ex in raw]
  assert src != ref
  first = next(data.eval_batches('dev'))
  seg = first['targets_segmentation'][0]
  assert data.tokenizer.decode(first['targets'][0][seg == 1]) == ' '.join(ref[0].split())
  assert data.word_count('dev') == sum(len(r.split()) + 1 for r in ref)


def test_lm1b_packs_and_dev_is_test(tmp_path):
  with tfds.testing.mock_data(num_examples=40):
    data = pipeline.load_task_data('lm', tfds_config('lm'), tmp_path, log=lambda m: None)
    batch = next(data.train_batches())
    dev, _ = data.eval_texts('dev')
    test, _ = data.eval_texts('test')
    eval_batches = list(data.eval_batches('test'))
  assert set(batch) == {'targets', 'targets_segmentation', 'targets_position'}
  assert all(v.shape == (4, 32) and v.dtype == np.int32 for v in batch.values())
  assert len(test) == 40 and dev == test     # lm1b has no validation split
  n = sum(len(np.unique(b['targets_segmentation'][r][b['targets_segmentation'][r] > 0]))
          for b in eval_batches for r in range(4))
  assert n == len(data._eval('test')[1])


def test_split_mapping():
  assert tfds_source.tfds_split('wmt14_translate/de-en', 'dev') == 'validation'
  assert tfds_source.tfds_split('lm1b', 'dev') == 'test'
  assert tfds_source.tfds_split('lm1b', 'train[:1%]') == 'train[:1%]'


def test_download_failure_says_what_to_do(monkeypatch):
  class Failing:
    def download_and_prepare(self):
      raise ConnectionError('503 Service Unavailable')
  monkeypatch.setattr(tfds, 'builder', lambda *a, **k: Failing())
  with pytest.raises(RuntimeError, match="503.*\\n.*data.source='offline'"):
    next(tfds_source.translation_pairs('train'))


def test_missing_tfds_says_how_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)  # makes the import fail
  with pytest.raises(ImportError, match=r"pip install 'mqa_repro\[tfds\]'"):
    next(tfds_source.lm_sentences('test'))
