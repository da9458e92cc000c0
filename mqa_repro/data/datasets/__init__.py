"""Where text comes from: one module per data source, named by ``config.data.source``.

A source module defines ``make(task, data_config, log) -> Source``; a Source serves the splits
'train', 'dev' and 'test' (the pipeline maps 'dev' / 'test' through ``data.dev_split`` /
``data.test_split``) of one task::

  rows(split)         -> iterator of tuples, one string per task side (tasks.Task.sides: an
                         (English, German) pair for translation, (sentence,) for the LM), in a
                         fixed order (the pipeline shuffles by seed itself)
  fingerprint(split)  -> a string that changes whenever the split's text does (it keys the token
                         cache: a stale cache is never read)
  describe(split)     -> where the text came from, for logs and results records
  files(split)        -> the local files read (for the results' data record; [] when none)

Adding a dataset is adding a module here (docs/extending.md); nothing else lists the sources.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Callable, Iterator, Protocol

Log = Callable[[str], None]


class Source(Protocol):
  def rows(self, split: str) -> Iterator[tuple[str, ...]]: ...
  def fingerprint(self, split: str) -> str: ...
  def describe(self, split: str) -> str: ...
  def files(self, split: str) -> list[Path]: ...


def names() -> list[str]:
  """Every data source: the modules of this package."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith('_'))


def make(task, data_config, log: Log) -> Source:
  """The source ``data_config.source`` names, for `task` (a tasks.Task)."""
  if data_config.source not in names():
    raise ValueError(f"data.source must be one of {tuple(names())}, got {data_config.source!r}")
  module = importlib.import_module(f'{__name__}.{data_config.source}')
  return module.make(task, data_config, log)
