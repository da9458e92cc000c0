"""The import graph: it flows one way (cli -> orchestration -> libraries), with no cycles, no library
importing the command line, and every import of the package naming a module that exists here.

Every import counts, those inside functions too: a lazy import is still a dependency."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / 'mqa_repro'


def _module_name(path: Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _exists(name: str) -> bool:
  path = PACKAGE.parent.joinpath(*name.split('.'))
  return path.with_suffix('.py').is_file() or (path / '__init__.py').is_file()


def _graph() -> dict[str, set[str]]:
  """module -> the project modules it imports."""
  graph = {}
  for path in sorted(PACKAGE.rglob('*.py')):
    edges = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        edges |= {a.name for a in node.names if a.name.split('.')[0] == 'mqa_repro'}
      elif isinstance(node, ast.ImportFrom) and node.module and node.module.split('.')[0] == 'mqa_repro':
        for a in node.names:   # `from pkg import module` names a module; else the name is in pkg
          sub = f'{node.module}.{a.name}'
          edges.add(sub if _exists(sub) else node.module)
    graph[_module_name(path)] = edges - {_module_name(path)}
  return graph


GRAPH = _graph()


def test_every_import_names_a_module_of_this_checkout():
  """(An installed copy of an older tree could otherwise answer for a module moved away here.)"""
  missing = {f'{m} -> {d}' for m, deps in GRAPH.items() for d in deps if not _exists(d)}
  assert not missing


def test_no_module_outside_cli_imports_the_command_line():
  offenders = {f'{m} -> {d}' for m, deps in GRAPH.items() for d in deps
               if d.startswith('mqa_repro.cli') and not m.startswith('mqa_repro.cli')}
  assert not offenders


def test_the_graph_has_no_cycles():
  state: dict[str, int] = {}         # 1 = on the current path, 2 = done
  cycles = []

  def visit(m, path):
    state[m] = 1
    for d in sorted(GRAPH.get(m, ())):
      if state.get(d) == 1:
        cycles.append(path[path.index(d):] + [d])
      elif d not in state:
        visit(d, path + [d])
    state[m] = 2

  for m in sorted(GRAPH):
    if m not in state:
      visit(m, [m])
  assert not cycles, '\n'.join(' -> '.join(c) for c in cycles)


@pytest.mark.parametrize('library', ['mqa_repro.nn', 'mqa_repro.kernels', 'mqa_repro.decoding',
                                     'mqa_repro.training', 'mqa_repro.evaluation', 'mqa_repro.data',
                                     'mqa_repro.corpus', 'mqa_repro.report', 'mqa_repro.costs',
                                     'mqa_repro.config', 'mqa_repro.tasks'])
def test_libraries_do_not_import_the_orchestration(library):
  """reproduce (the orchestration) and the API sit above the libraries, never below them."""
  above = ('mqa_repro.reproduce', 'mqa_repro.api', 'mqa_repro.cli')
  offenders = {f'{m} -> {d}' for m, deps in GRAPH.items() if m.startswith(library)
               for d in deps if d.startswith(above)}
  assert not offenders
