"""``mqa-repro tables``: results JSON -> tables.md, CSV files and plots (mqa_repro.report.tables).

    mqa-repro tables --preset smoke            # reads ./results/smoke/
    mqa-repro tables --results DIR             # any results directory (rows/*.json, bench.json)

It reads results only, so it has no config to override.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from mqa_repro.cli.common import Parser, stderr


def main(argv: Sequence[str]) -> int:
  p = Parser('mqa-repro tables', __doc__, overrides=None)
  p.add_argument('--preset', help='read ./runs/<preset>/results/, where `reproduce` writes by default')
  p.add_argument('--results', help='a results directory (rows/*.json, bench.json)')
  args, _ = p.parse(argv)
  if not args.preset and not args.results:
    p.error('give --preset NAME or --results DIR')
  from mqa_repro.reproduce import default_results
  results = Path(args.results or default_results(args.preset))
  if not results.is_dir():
    stderr(f'mqa-repro tables: {results} does not exist (run `mqa-repro reproduce --preset ...` first)')
    return 2
  from mqa_repro.report.tables import write_tables
  for path in write_tables(results):
    print(path)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
