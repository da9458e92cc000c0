"""Where a benchmark's numbers go: provenance, and a JSON file rewritten after every point so that a
run cut short (a time limit, an error) keeps what it measured, and a rerun can skip it."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Sequence


def provenance(argv: Sequence[str] | None = None, prog: str = 'mqa-repro bench') -> dict[str, Any]:
  import flax
  import jax
  import optax
  commit, dirty = os.environ.get('MQA_REPRO_COMMIT'), None  # set by whoever copied the tree over
  if not commit:                                             # (a copied .git may be stale)
    here = Path(__file__).resolve().parent
    try:
      commit = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                              cwd=here, timeout=10).stdout.strip() or None
      dirty = bool(subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no', '--', '.',
                                   ':!results'], capture_output=True, text=True, cwd=here,
                                  timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
      commit = None
    if not (commit and len(commit) == 40 and all(ch in '0123456789abcdef' for ch in commit)):
      commit, dirty = None, None
  dev = jax.devices()[0]
  return {'device': dev.device_kind, 'device_count': jax.device_count(), 'platform': dev.platform,
          'jax': jax.__version__, 'flax': flax.__version__, 'optax': optax.__version__,
          'python': platform.python_version(), 'git_commit': commit, 'git_dirty': dirty,
          'command': prog + ' ' + ' '.join(argv or []),
          'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}


def write_json(path: str | os.PathLike, obj: Any) -> None:
  """Write via a temporary file and a rename: a run killed mid-write leaves the previous file whole."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + '.tmp')
  tmp.write_text(json.dumps(obj, indent=1))
  os.replace(tmp, path)


def read_json(path: str | os.PathLike | None) -> dict[str, Any] | None:
  """The JSON object at `path`, or None when there is no (readable) file."""
  if not path or not Path(path).is_file():
    return None
  try:
    return json.loads(Path(path).read_text())
  except (OSError, json.JSONDecodeError):
    return None
