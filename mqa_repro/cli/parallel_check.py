"""``mqa-repro parallel-check``: the same training steps and decodes on 1 device vs N, as one process
or one process per device, with throughput and scaling efficiency (mqa_repro.training.parallel_check).

    mqa-repro parallel-check --config configs/wmt_mqa.py:gpu [--layouts data,model] [--steps 10]
                             [--rtol 1e-4] [--decode-batch 256] [--out FILE] [--config.KEY=VALUE ...]
    mqa-repro parallel-check --compare BASE.json RUN.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

from mqa_repro.cli.common import Parser


def main(argv: Sequence[str]) -> int:
  argv = list(argv)
  p = Parser('mqa-repro parallel-check', __doc__, overrides='the config file')
  p.add_argument('--config', help='config file[:size]')
  p.add_argument('--compare', nargs=2, metavar=('BASE', 'RUN'),
                 help="a multi-process run's JSON against a 1-process run's 1-device baselines")
  p.add_argument('--layouts', default='data,model', help='comma list of single,data,fsdp,model')
  p.add_argument('--steps', type=int, default=10)
  p.add_argument('--rtol', type=float, default=1e-4)
  p.add_argument('--decode-batch', type=int, default=256)
  p.add_argument('--out', default=None)
  args, overrides = p.parse(argv)
  from mqa_repro.training import parallel_check
  if args.compare:
    base, run = (json.loads(Path(f).read_text()) for f in args.compare)
    print(json.dumps(parallel_check.compare(base, run), indent=1))
    return 0
  if not args.config:
    p.error('give --config FILE (or --compare BASE RUN)')
  layouts = [name for name in args.layouts.split(',') if name]
  unknown = [name for name in layouts if name not in parallel_check.LAYOUTS]
  if unknown:
    p.error(f'--layouts: unknown {unknown}; choose from {list(parallel_check.LAYOUTS)}')
  from mqa_repro.training import sharding
  sharding.maybe_initialize_distributed()
  import jax
  result = parallel_check.run_checks(args.config, overrides, layouts, args.steps, args.rtol,
                                     args.decode_batch, args.out, argv)
  if jax.process_index() == 0:
    print(json.dumps(result, indent=1))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
