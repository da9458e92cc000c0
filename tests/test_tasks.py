"""The task as a value and the data source protocol: no module tests a task's name, and a new
dataset is one module in mqa_repro/data/datasets/."""

import re
from pathlib import Path

import numpy as np
import pytest

from mqa_repro import config as cfg
from mqa_repro import tasks
from mqa_repro.data import datasets, pipeline
from mqa_repro.nn import transformer as mdl

PACKAGE = Path(tasks.__file__).resolve().parent


def test_no_module_branches_on_a_task_name():
  """What differs between the tasks is in tasks.py; everywhere else reads the record."""
  pattern = re.compile(r"""(==|!=)\s*['"](translate|lm)['"]|['"](translate|lm)['"]\s*(==|!=)""")
  hits = [f'{p.relative_to(PACKAGE)}:{i}' for p in PACKAGE.rglob('*.py') if p.name != 'tasks.py'
          for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
  assert hits == []


@pytest.mark.parametrize('name', sorted(tasks.TASKS))
def test_a_task_record_shapes_its_config_batches_and_model(name):
  task = tasks.get(name)
  c = cfg.row_config(name, 'mqa', 'tiny')
  assert c.name == f'{task.prefix}_mqa_tiny'
  assert (c.model.encoder_layers > 0) == task.encoder
  assert (c.model.dropout_rate, c.model.attention_dropout_rate, c.model.relu_dropout_rate) == task.dropout
  assert c.train.label_smoothing == task.label_smoothing and c.data.tfds_name == task.tfds_name
  batch = mdl.dummy_batch(name)
  assert set(batch) == {f'{side}{suffix}' for side in task.sides
                        for suffix in ('', '_segmentation', '_position')}
  params = mdl.abstract_params(mdl.make_model(c), name)
  assert ('encoder_0' in params) == task.encoder
  with pytest.raises(ValueError, match='task must be one of'):
    tasks.get('summarize')


TOY = '''
"""A toy data source for the test: every split is the same three rows."""


class Toy:
  def __init__(self, task):
    self.task = task

  def rows(self, split):
    for i in range(3):
      yield tuple(f'{side} row {i} of {split}' for side in self.task.sides)

  def fingerprint(self, split):
    return f'toy:{split}'

  def describe(self, split):
    return f'the toy source [{split}]'

  def files(self, split):
    return []


def make(task, data_config, log):
  return Toy(task)
'''


@pytest.mark.parametrize('name', sorted(tasks.TASKS))
def test_a_new_dataset_is_one_module(name, tmp_path, monkeypatch):
  assert datasets.names() == ['offline', 'text', 'tfds']
  (tmp_path / 'toy.py').write_text(TOY)
  monkeypatch.setattr(datasets, '__path__', [*datasets.__path__, str(tmp_path)])
  assert 'toy' in datasets.names()
  c = pipeline.default_data_config(name)
  c.update(source='toy', vocab_size=40, max_length=64, batch_size=2, eval_batch_size=2)
  data = pipeline.load_task_data(name, c, tmp_path / 'work', log=lambda m: None)
  sources, references = data.eval_texts('dev')
  assert sources[0] == f'{tasks.get(name).sides[0]} row 0 of dev' and len(references) == 3
  batch = next(data.train_batches())
  assert set(batch) == set(mdl.dummy_batch(name)) and np.count_nonzero(batch['targets']) > 0
  c.source = 'nope'
  with pytest.raises(ValueError, match="data.source must be one of .*'toy'"):
    pipeline.load_task_data(name, c, tmp_path / 'work', log=lambda m: None)
