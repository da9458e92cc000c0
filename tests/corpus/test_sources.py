"""The named sources (mqa_repro.corpus.sources): package choice and the order files are read in."""

from __future__ import annotations

import json

from mqa_repro.corpus import packages, sources


def test_wesnoth_packages_takes_the_newest_branchs_campaigns() -> None:
  available = ['wesnoth-1.14-httt', 'wesnoth-1.16-httt', 'wesnoth-1.16-tsg', 'wesnoth-1.16-data',
               'wesnoth-1.16-music', 'wesnoth-1.9-httt', 'wesnoth-core']
  assert sources.wesnoth_packages(available) == ['wesnoth-1.16-httt', 'wesnoth-1.16-tsg']
  assert sources.wesnoth_packages(['wesnoth-core']) == []


def test_nlp_corpus_reads_documents_in_numeric_order(tmp_path, monkeypatch) -> None:
  docs = {f'package/builds/doc-{i}.json': json.dumps([f'Sentence of document {i}.']).encode()
          for i in (10, 2, 0)}
  pkg = packages.MemoryPackage('nlp-corpus', '4.4.0', {**docs, 'package/builds/index.json': b'[]'})
  monkeypatch.setattr(packages, 'fetch_packages', lambda kind, names, cache, **kw: {'nlp-corpus': pkg})
  result = sources.SOURCES['nlp_corpus'].collect(tmp_path, print)
  assert result.items == [f'Sentence of document {i}.' for i in (0, 2, 10)]
  assert result.packages == {'npm:nlp-corpus': '4.4.0'}


def test_every_source_reads_its_packages(tmp_path, fake_fetch) -> None:
  # Each source finds its files in the fixture packages (conftest) and yields items of its kind.
  for name, source in sources.SOURCES.items():
    result = source.collect(tmp_path, lambda s: None)
    assert result.items, name
    assert all(isinstance(item, tuple if source.kind == 'pairs' else str) for item in result.items), name
    assert result.packages, name
