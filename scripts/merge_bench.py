"""Merge benchmark files (`mqa-repro bench --out`) written by separate commands or processes into one
(mqa_repro.bench.merge says what is added and what is kept); the environment records beside the
sources (environment.json) join the one beside the target.

    python scripts/merge_bench.py --into results/h200/bench.json /path/a/bench.json /path/b/bench.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mqa_repro.bench.merge import merge
from mqa_repro.report.records import merge_environment, write_json


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--into', type=Path, required=True, help='the benchmark file to add to')
  parser.add_argument('sources', type=Path, nargs='+', help='benchmark files to add from')
  args = parser.parse_args(argv)
  into = json.loads(args.into.read_text()) if args.into.is_file() else {}
  for src in args.sources:
    try:
      added = merge(into, json.loads(src.read_text()), str(src))
    except json.JSONDecodeError as e:
      print(f'merge_bench: {src}: not JSON ({e})', file=sys.stderr)
      return 2
    except ValueError as e:
      print(f'merge_bench: {e}', file=sys.stderr)
      return 2
    print(f"merge: {src}: {len(added)} added" + (f" ({', '.join(added)})" if added else ''))
  write_json(args.into, into)
  for src in args.sources:   # the environments its runs name, by id
    if (src.parent / 'environment.json').is_file():
      merge_environment(args.into.parent, json.loads((src.parent / 'environment.json').read_text()))
  print(f'merge: wrote {args.into}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
