"""Local text files (``data.source='text'``): ``data.train_files`` / ``dev_files`` / ``test_files``,
comma-separated. Translation: ``PREFIX`` (``PREFIX.en`` + ``PREFIX.de``) or ``.tsv``; LM: one sentence
per line. Relative paths not found from the working directory are looked up in ``$MQA_REPRO_DATA``.
"""

from __future__ import annotations

from mqa_repro.data import sources


def make(task, data_config, log) -> sources.FileSource:
  data_dir = sources.resolve_data_dir(None)
  specs = {split: [sources.resolve_text_path(s, data_dir)
                   for s in sources.split_specs(data_config[f'{split}_files'])]
           for split in ('train', 'dev', 'test')}
  specs['validation'] = specs['dev']
  return sources.FileSource(task, specs, log,
                            "data.source='text': set data.train_files / dev_files / test_files")
