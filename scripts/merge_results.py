"""Merge results directories written by separate `reproduce` processes (one per GPU, one per machine)
into one, then regenerate its tables.

    python scripts/merge_results.py --into results/h200 /path/results_gpu0 /path/results_gpu1 ...

Runs (rows/*.json with their hyps/) are copied, a run already in --into being replaced only by a newer
one (by its provenance date); references and data records must agree where both have them (same
text, same counts), else the merge stops and names the file; run.json histories are concatenated;
environment records are kept by id (report.records.merge_environment).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from mqa_repro.report.records import merge_environment


def _load(path: Path) -> dict:
  return json.loads(path.read_text(encoding='utf-8'))


def merge(into: Path, sources: list[Path], log=print) -> list[str]:
  into.mkdir(parents=True, exist_ok=True)
  merged = []
  for src in sources:
    for f in sorted((src / 'rows').glob('*.json')):
      run = _load(f)
      target = into / 'rows' / f.name
      if target.is_file():
        old = _load(target)
        if old.get('provenance', {}).get('date_utc', '') >= run.get('provenance', {}).get('date_utc', ''):
          log(f'merge: keeping {target} (not older than {f})')
          continue
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(f, target)
      hyps = src / 'hyps' / run['name']
      if hyps.is_dir():
        shutil.rmtree(into / 'hyps' / run['name'], ignore_errors=True)
        shutil.copytree(hyps, into / 'hyps' / run['name'])
      merged.append(run['name'])
    for f in sorted((src / 'refs').glob('*')) if (src / 'refs').is_dir() else []:
      target = into / 'refs' / f.name
      if target.is_file() and target.read_bytes() != f.read_bytes():
        import lzma
        if lzma.decompress(target.read_bytes()) != lzma.decompress(f.read_bytes()):
          raise ValueError(f'{f} and {target} hold different references')
      elif not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    for f in sorted(src.glob('data_*.json')):
      target = into / f.name
      if target.is_file() and _load(target) != _load(f):
        raise ValueError(f'{f} and {target} describe different data: runs of one table must share it')
      shutil.copy2(f, target)
    if (src / 'environment.json').is_file():
      merge_environment(into, _load(src / 'environment.json'))
    if (src / 'run.json').is_file():
      history = _load(into / 'run.json').get('history', []) if (into / 'run.json').is_file() else []
      history += _load(src / 'run.json').get('history', [])
      (into / 'run.json').write_text(json.dumps({'history': history}, indent=1) + '\n', encoding='utf-8')
  return merged


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--into', required=True)
  p.add_argument('--no-tables', action='store_true')
  p.add_argument('sources', nargs='+')
  args = p.parse_args(argv)
  try:
    names = merge(Path(args.into), [Path(s) for s in args.sources])
  except ValueError as e:
    print(f'merge_results: {e}', file=sys.stderr)
    return 2
  print(f'merged {len(names)} runs: {", ".join(names)}')
  if not args.no_tables:
    from mqa_repro.report import tables
    tables.write_tables(Path(args.into))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
