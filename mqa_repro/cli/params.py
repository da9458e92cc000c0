"""``mqa-repro params``: the parameter count of every table row (or of given config files), the
numbers the equal-parameter rule makes equal.

    mqa-repro params [--json] [--size paper|gpu|tiny] [--config FILE ...] [--config.KEY=VALUE ...]
"""

from __future__ import annotations

import json
from typing import Sequence

from mqa_repro.cli.common import Parser


def main(argv: Sequence[str]) -> int:
  from mqa_repro import config as cfg
  from mqa_repro import costs

  p = Parser('mqa-repro params', __doc__, overrides='every config counted (e.g. model.num_kv_heads)')
  p.add_argument('--json', action='store_true', help='one JSON list instead of a table')
  p.add_argument('--size', default='paper', choices=sorted(cfg.SIZES))
  p.add_argument('--config', action='append', default=[],
                 help='config file(s) (default: every row in configs/)')
  args, overrides = p.parse(argv)
  try:
    if args.config:
      configs = [cfg.load_config(spec, overrides) for spec in args.config]
    else:
      configs = [cfg.row_config(task, row, args.size) for task in cfg.ROWS for row in cfg.ROWS[task]]
      for c in configs:
        cfg.apply_overrides(c, overrides)
        cfg.validate(c)
  except (ValueError, FileNotFoundError) as e:
    p.error(str(e))
  rows = []
  for c in configs:
    m = c.model
    rows.append({'name': c.name, 'task': c.task, 'h': m.num_heads, 'g': m.num_kv_heads,
                 'd_k': m.qk_dim, 'd_v': m.v_dim, 'd_ff': m.d_ff, 'window': m.window,
                 'params': costs.param_count(m, c.task), 'in_paper': c.row in cfg.PAPER_ROWS[c.task]})
  if args.json:
    print(json.dumps(rows, indent=1))
    return 0
  print(f"{'config':<22}{'h':>3}{'g':>3}{'d_k':>5}{'d_v':>5}{'d_ff':>7}{'window':>8}{'params':>14}")
  for r in rows:
    window = r['window'] or '-'
    print(f"{r['name']:<22}{r['h']:>3}{r['g']:>3}{r['d_k']:>5}{r['d_v']:>5}{r['d_ff']:>7}"
          f"{window:>8}{r['params']:>14,}")
  return 0
