"""TensorFlow Datasets (``data.source='tfds'``): ``data.tfds_name`` (the task's default: WMT14 de-en
read English -> German, lm1b), in ``data.tfds_data_dir``. TensorFlow is imported only when rows are
read (mqa_repro.data.tfds_source).
"""

from __future__ import annotations

from typing import Iterator


class TfdsSource:

  def __init__(self, task, name: str, data_dir: str):
    self.task, self.name, self.data_dir = task, name, data_dir or None

  def rows(self, split: str) -> Iterator[tuple[str, ...]]:
    from mqa_repro.data import tfds_source
    if len(self.task.sides) == 2:
      return tfds_source.translation_pairs(split, name=self.name, data_dir=self.data_dir)
    return ((s,) for s in tfds_source.lm_sentences(split, name=self.name, data_dir=self.data_dir))

  def fingerprint(self, split: str) -> str:
    from mqa_repro.data import tfds_source
    return tfds_source.fingerprint(self.name, split, self.data_dir)

  def describe(self, split: str) -> str:
    return f'tfds {self.name} [{split}]'

  def files(self, split: str) -> list:
    return []


def make(task, data_config, log) -> TfdsSource:
  return TfdsSource(task, data_config.tfds_name, data_config.tfds_data_dir)
