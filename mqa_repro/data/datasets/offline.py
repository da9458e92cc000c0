"""The offline corpus (``data.source='offline'``): English-German pairs and English text built from
package-registry content by mqa_repro.corpus, in ``data.data_dir`` ('' = ``$MQA_REPRO_CACHE/
offline_corpus`` or ``~/.cache/mqa_repro/offline_corpus``), built on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from mqa_repro import paths
from mqa_repro.data import sources


def default_dir() -> Path:
  return paths.local_cache_dir('offline_corpus')


def make(task, data_config, log) -> sources.FileSource:
  # The builder lives in its own package (and may download packages); import it only when used.
  corpus = importlib.import_module('mqa_repro.corpus')
  out_dir = Path(data_config.data_dir).expanduser() if data_config.data_dir else default_dir()
  # Always ask the builder: it returns at once when its manifest is up to date, and it alone knows
  # whether files left by an interrupted or older build are complete.
  corpus.build_offline_corpus(out_dir, log=log)
  specs = {split: [p] for split, p in corpus.offline_corpus_paths(out_dir)[task.name].items()}
  specs['validation'] = specs.get('dev', [])
  return sources.FileSource(task, specs, log, f'offline corpus in {out_dir}')
