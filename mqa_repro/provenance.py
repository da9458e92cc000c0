"""Where a number came from: one provenance record for every results file the project writes
(``reproduce``'s runs and history, ``bench``, ``evaluate --json``, ``data bench``, ``parallel_check``).

The record (``collect``)::

  command        the command line that produced the file
  date_utc       ISO 8601, seconds
  git_commit     $MQA_REPRO_COMMIT when set (whoever copied the tree to another machine knows it
                 best), else the commit of THIS project's repository, else 'unknown'
  git_dirty      whether tracked code outside results/ differs from that commit; None when unknown
                 (no repository, or the commit came from the environment)
  device_kind, platform, device_count, process_count
  host           {machine, cpus, python}
  env            MQA_REPRO_*, XLA_FLAGS*, JAX_* and CUDA_VISIBLE_DEVICES: where the text came from and
                 how JAX was steered
  versions       the packages the numbers depend on
  ...            whatever the caller adds (``preset`` for reproduce)

The exact software environment (``environment``: every package the project depends on, the JAX
plugins and accelerator libraries installed beside jax, the interpreter and the OS) is longer than a
record should repeat, so it is written ONCE per results folder, as ``environment.json``
(``report.records.write_environment``; reproduce and bench do it), and each row's provenance names it by its ``id``.

The commit is read from git only when git's top level IS the project root (the directory holding
``pyproject.toml`` above the package): a checkout copied inside another repository would otherwise
report that repository's commit.

Files written before this record existed used three other layouts (bench: ``device`` / ``jax`` /
``flax`` at the top; evaluate and data: ``date`` / ``jax`` / ``device``). ``normalize`` reads any of
them into this one, so the tables keep reading old results.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

COMMIT_ENV = 'MQA_REPRO_COMMIT'
PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'sacrebleu', 'sentencepiece', 'numpy')
_ENV_PREFIXES = ('MQA_REPRO_', 'XLA_FLAGS', 'JAX_')
# environment.json: the project's dependencies (pyproject.toml's [project] dependencies plus jaxlib; a
# test keeps the two lists in step), then what else the numbers or the files can depend on when it is installed.
DEPENDENCIES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'sentencepiece', 'sacrebleu',
                'ml-collections', 'numpy')
OPTIONAL = ('etils', 'tensorstore', 'ml_dtypes', 'chex', 'tensorboardX', 'tensorboard', 'protobuf',
            'tensorflow', 'tensorflow-cpu', 'tensorflow-datasets', 'matplotlib', 'torch',
            'transformers', 'triton')
# Installed distributions whose names start so are JAX backends or the CUDA / ROCm / TPU libraries
# they load (jax-cuda12-plugin, jax-cuda12-pjrt, nvidia-cublas-cu12, libtpu, ...).
PLUGIN_PREFIXES = ('jax-cuda', 'jax_cuda', 'jax-rocm', 'jax_rocm', 'jax-tpu', 'libtpu', 'nvidia-')


def project_root() -> Path | None:
  """The directory holding pyproject.toml above the package, or None (an installed copy)."""
  root = Path(__file__).resolve().parent.parent
  return root if (root / 'pyproject.toml').is_file() else None


def _git(root: Path, *args: str) -> str | None:
  try:
    out = subprocess.run(['git', *args], capture_output=True, text=True, check=True, cwd=root,
                         timeout=10)
  except (OSError, subprocess.SubprocessError):
    return None
  return out.stdout.strip()


def code_version() -> tuple[str, bool | None]:
  """(commit, dirty) as the module docstring defines them."""
  env = os.environ.get(COMMIT_ENV)
  if env:
    return env, None
  root = project_root()
  top = _git(root, 'rev-parse', '--show-toplevel') if root else None
  if not top or Path(top).resolve() != root:
    return 'unknown', None
  commit = _git(root, 'rev-parse', 'HEAD')
  if not commit:
    return 'unknown', None
  status = _git(root, 'status', '--porcelain', '--untracked-files=no', '--', '.', ':!results')
  return commit, None if status is None else bool(status)


def _version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return 'not installed'


def _canonical(name: str) -> str:
  return re.sub(r'[-_.]+', '-', name).lower()


def environment() -> dict[str, Any]:
  """The exact software environment: {'id', 'python', 'implementation', 'platform', 'machine',
  'dependencies' {name: version}, 'plugins' {name: version}, 'optional' {name: version}}.
  'dependencies' lists every package of DEPENDENCIES ('not installed' when missing); 'plugins' every
  installed distribution matching PLUGIN_PREFIXES; 'optional' those of OPTIONAL that are installed.
  `id`: a short sha256 of everything else, so records can name the environment they ran in."""
  installed: dict[str, str] = {}
  for dist in importlib.metadata.distributions():
    name = dist.metadata['Name']
    if name:
      installed.setdefault(_canonical(name), dist.version)
  env: dict[str, Any] = {
      'python': sys.version.split()[0],
      'implementation': platform.python_implementation(),
      'platform': platform.platform(),
      'machine': platform.machine(),
      'dependencies': {p: installed.get(_canonical(p), 'not installed') for p in DEPENDENCIES},
      'plugins': {n: v for n, v in sorted(installed.items())
                  if n.startswith(tuple(_canonical(p) for p in PLUGIN_PREFIXES))},
      'optional': {p: installed[_canonical(p)] for p in OPTIONAL if _canonical(p) in installed},
  }
  digest = hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:12]
  return {'id': digest, **env}


def command_line(prog: str, argv: Sequence[str] | None) -> str:
  return ' '.join([prog, *map(shlex.quote, argv or ())])


def collect(prog: str, argv: Sequence[str] | None = None, *, devices: bool = True,
            **extra: Any) -> dict[str, Any]:
  """The provenance record of a command `prog` run with `argv` (module docstring); `extra` fields
  are added as they are. ``devices=False`` leaves out the device fields, for host-only work (the
  data pipeline) that should not start JAX."""
  commit, dirty = code_version()
  record = {
      **extra,
      'command': command_line(prog, argv),
      'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'git_commit': commit,
      'git_dirty': dirty,
  }
  if devices:
    import jax
    record.update(device_kind=jax.devices()[0].device_kind, platform=jax.devices()[0].platform,
                  device_count=jax.device_count(), process_count=jax.process_count())
  return {
      **record,
      'host': {'machine': platform.machine(), 'cpus': os.cpu_count(),
               'python': platform.python_version()},
      'env': {k: v for k, v in sorted(os.environ.items())
              if k.startswith(_ENV_PREFIXES) or k == 'CUDA_VISIBLE_DEVICES'},
      'versions': {p: _version(p) for p in PACKAGES},
  }


def normalize(record: dict[str, Any] | None) -> dict[str, Any]:
  """Any provenance layout this project has written -> the fields of ``collect`` (missing ones
  absent). The record itself is not changed."""
  old = dict(record or {})
  out = {k: v for k, v in old.items() if k not in ('device', 'date', 'jax', 'flax', 'optax', 'python')}
  if 'device_kind' not in out and 'device' in old:
    out['device_kind'] = old['device']
  if 'date_utc' not in out and 'date' in old:
    out['date_utc'] = old['date']
  versions = dict(old.get('versions') or {})
  for package in ('jax', 'flax', 'optax'):
    if package in old:
      versions.setdefault(package, old[package])
  if versions:
    out['versions'] = versions
  if 'python' in old:
    out['host'] = {'python': old['python'], **(old.get('host') or {})}
  if not out.get('git_commit'):
    out['git_commit'] = 'unknown'
  return out
