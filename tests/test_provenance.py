"""One provenance record: the commit of THIS project (or $MQA_REPRO_COMMIT), never of a repository
that merely encloses the tree; old layouts read into the current one."""

import importlib.util
import json
import shutil
import subprocess

import pytest

from mqa_repro import provenance
from mqa_repro.report import records


def _copy_inside_another_repository(tmp_path):
  """The package (with a pyproject.toml) copied into a directory of an unrelated git repository:
  the layout that made the GPU machine report its parent repository's commit."""
  outer = tmp_path / 'outer'
  project = outer / 'copied_project'
  (project / 'mqa_repro').mkdir(parents=True)
  shutil.copy(provenance.__file__, project / 'mqa_repro' / 'provenance.py')
  (project / 'pyproject.toml').write_text('[project]\nname = "x"\n')
  git = ['git', '-c', 'user.name=t', '-c', 'user.email=t@t', '-C', str(outer)]
  subprocess.run(git + ['init', '-q'], check=True)
  subprocess.run(git + ['add', '-A'], check=True)
  subprocess.run(git + ['commit', '-q', '-m', 'outer'], check=True)
  spec = importlib.util.spec_from_file_location('copied_provenance', project / 'mqa_repro' / 'provenance.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_an_enclosing_repository_is_not_the_project(tmp_path, monkeypatch):
  if shutil.which('git') is None:
    pytest.skip('git not installed')
  monkeypatch.delenv(provenance.COMMIT_ENV, raising=False)
  copied = _copy_inside_another_repository(tmp_path)
  assert copied.project_root() == tmp_path / 'outer' / 'copied_project'
  assert copied.code_version() == ('unknown', None)
  monkeypatch.setenv(provenance.COMMIT_ENV, 'f' * 40)
  assert copied.code_version() == ('f' * 40, None)   # whoever copied the tree knows its commit


def test_the_project_repository_gives_its_commit(monkeypatch):
  monkeypatch.delenv(provenance.COMMIT_ENV, raising=False)
  root = provenance.project_root()
  top = subprocess.run(['git', 'rev-parse', '--show-toplevel'], cwd=root, capture_output=True,
                       text=True).stdout.strip()
  if not top:
    pytest.skip('not a git checkout')
  commit, dirty = provenance.code_version()
  assert len(commit) == 40 and isinstance(dirty, bool)


def test_record_fields_and_old_layouts():
  record = provenance.collect('mqa-repro x', ['--a', 'b c'], preset='smoke')
  for key in ('command', 'date_utc', 'git_commit', 'git_dirty', 'device_kind', 'platform',
              'device_count', 'process_count', 'host', 'env', 'versions', 'preset'):
    assert key in record, key
  assert record['command'] == "mqa-repro x --a 'b c'"
  assert 'device_kind' not in provenance.collect('mqa-repro data', [], devices=False)
  # bench's old layout, and evaluate's / data's
  old_bench = {'device': 'H100', 'jax': '0.4', 'flax': '0.8', 'python': '3.11', 'git_commit': None,
               'date_utc': '2025-01-01'}
  new = provenance.normalize(old_bench)
  assert new['device_kind'] == 'H100' and new['versions'] == {'jax': '0.4', 'flax': '0.8'}
  assert new['git_commit'] == 'unknown' and new['host'] == {'python': '3.11'}
  assert provenance.normalize({'date': '2024', 'device': 'cpu'})['date_utc'] == '2024'
  assert provenance.normalize(record) == record


def test_results_readers_accept_both_layouts(tmp_path):
  (tmp_path / 'rows').mkdir()
  records.write_json(tmp_path / 'rows' / 'a.json', {'name': 'a', 'provenance': {'device': 'GPU'}})
  records.write_json(tmp_path / 'bench.json', {'provenance': {'jax': '0.5'}, 'runs': [{'device': 'X'}]})
  assert records.load_runs(tmp_path)[0]['provenance']['device_kind'] == 'GPU'
  bench = records.load_bench(tmp_path)
  assert bench['provenance']['versions']['jax'] == '0.5' and bench['runs'][0]['device_kind'] == 'X'
  records.write_json(tmp_path / 'run.json', {'preset': 'smoke', 'provenance': {}})   # before history
  assert records.load_history(tmp_path)['history'][0]['preset'] == 'smoke'


def test_environment_lists_exact_versions_of_the_dependencies():
  import importlib.metadata
  import platform
  import sys
  env = provenance.environment()
  assert env['python'] == sys.version.split()[0] and env['platform'] == platform.platform()
  assert set(provenance.DEPENDENCIES) == set(env['dependencies'])
  for name in ('jax', 'jaxlib', 'flax', 'optax', 'numpy'):
    assert env['dependencies'][name] == importlib.metadata.version(name)
  # every installed JAX plugin / accelerator library is listed with its version
  assert all(n.startswith(('jax-', 'libtpu', 'nvidia-')) for n in env['plugins'])
  assert len(env['id']) == 12 and provenance.environment()['id'] == env['id']


def test_dependencies_match_pyproject():
  """DEPENDENCIES must name every [project] dependency of pyproject.toml, plus jaxlib (which jax
  pulls in and whose version decides the compiled code), and nothing else."""
  import re
  import tomllib
  root = provenance.project_root()
  if root is None:
    pytest.skip('an installed copy: no pyproject.toml')
  deps = tomllib.loads((root / 'pyproject.toml').read_text())['project']['dependencies']
  names = {re.split(r'[<>=!~; \[]', d, maxsplit=1)[0].lower().replace('_', '-') for d in deps}
  assert names | {'jaxlib'} == {d.lower() for d in provenance.DEPENDENCIES}


def test_environment_written_once_per_results_folder(tmp_path, monkeypatch):
  logs = []
  env = records.write_environment(tmp_path, logs.append)
  path = tmp_path / records.ENVIRONMENT_FILE
  first = path.read_text()
  assert records.read_json(path)['id'] == env['id'] and not logs
  records.write_environment(tmp_path, logs.append)      # same environment: file unchanged
  assert path.read_text() == first and not logs
  # another environment (here: a different numpy) replaces it and keeps the old one, by id
  real = provenance.environment
  monkeypatch.setattr(provenance, 'environment', lambda: {**real(), 'id': 'other', 'python': 'x'})
  records.write_environment(tmp_path, logs.append)
  now = records.read_json(path)
  assert now['id'] == 'other' and [p['id'] for p in now['previous']] == [env['id']]
  assert len(logs) == 1 and env['id'] in logs[0]


def test_merged_environment_records_keep_every_id_newest_on_top(tmp_path):
  from mqa_repro.report.records import merge_environment
  old = {'id': 'a', 'recorded_utc': '2026-01-01', 'python': '3.11'}
  new = {'id': 'b', 'recorded_utc': '2026-02-01', 'python': '3.12', 'previous': [old]}
  merge_environment(tmp_path, old)
  merge_environment(tmp_path, new)
  merge_environment(tmp_path, old)   # again: no duplicate
  env = json.loads((tmp_path / 'environment.json').read_text())
  assert env['id'] == 'b' and [e['id'] for e in env['previous']] == ['a']


def test_a_malformed_results_file_is_an_error_naming_it_not_an_absent_one(tmp_path):
  assert records.read_json(tmp_path / 'none.json') is None
  (tmp_path / 'cut.json').write_text('{"runs": [')
  with pytest.raises(ValueError, match='cut.json: not a readable JSON file'):
    records.read_json(tmp_path / 'cut.json')
  (tmp_path / 'list.json').write_text('[1, 2]')
  with pytest.raises(ValueError, match='list.json: holds a JSON list'):
    records.read_json(tmp_path / 'list.json')
