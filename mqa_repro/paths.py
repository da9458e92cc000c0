"""Run directories that may live in a bucket: ``--workdir gs://bucket/run``.

A run's files (config.json, vocab.model, checkpoints/, metrics.jsonl, model_info.json, tb/) go through
``etils.epath.Path`` (orbax's own path library, so no new dependency), which reads and writes local
paths and ``gs://`` alike (GCS through TensorFlow's gfile when TensorFlow is installed, else
fsspec + gcsfs; orbax's array files go through tensorstore, which reads gs:// itself).

What stays local: the data layer's token caches (memory-mapped numpy files; with a gs:// workdir they
go to ``$MQA_REPRO_CACHE`` or ~/.cache/mqa_repro/data_cache), and everything ``reproduce`` and
``data`` keep (results, run directories, shared vocabularies): those refuse a gs:// path with an error
naming their flag (``require_local``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from etils import epath

# URL schemes a run directory may use, besides local paths.
REMOTE_SCHEMES = ('gs',)
PathLike = Union[str, os.PathLike]


def scheme(value: PathLike) -> str:
  """'gs' for 'gs://bucket/x', '' for a local path."""
  text = os.fspath(value)
  return text.split('://', 1)[0] if '://' in text else ''


def is_local(value: PathLike) -> bool:
  return not scheme(value)


def run_path(value: PathLike, flag: str = '--workdir') -> epath.Path:
  """A run directory (or a file in one) as an ``epath.Path``: a local path (``~`` expanded) or a
  ``gs://`` URL; any other scheme is refused with an error naming `flag`."""
  if isinstance(value, epath.Path):
    return value                      # already an epath.Path (local or gs://)
  text = os.fspath(value)
  s = scheme(text)
  if s and s not in REMOTE_SCHEMES:
    raise ValueError(f"{flag} {text}: the {s}:// scheme is not supported; use a local directory or "
                     f"{' / '.join(f'{r}://bucket/...' for r in REMOTE_SCHEMES)}")
  return epath.Path(text if s else os.path.expanduser(text))


def require_local(value: PathLike, flag: str, what: str = 'this command') -> Path:
  """A local ``pathlib.Path``, or a ValueError naming `flag` for a URL (gs://...)."""
  text = os.fspath(value)
  if not is_local(text):
    raise ValueError(f"{flag} {text}: {what} needs a local directory ({scheme(text)}:// is supported "
                     f"only for the --workdir of train, decode and evaluate)")
  return Path(text).expanduser()


def local_cache_dir(*parts: str) -> Path:
  """A local cache directory: ``$MQA_REPRO_CACHE/<parts>`` or ~/.cache/mqa_repro/<parts>."""
  base = os.environ.get('MQA_REPRO_CACHE') or os.path.join('~', '.cache', 'mqa_repro')
  return Path(base).expanduser().joinpath(*parts)
