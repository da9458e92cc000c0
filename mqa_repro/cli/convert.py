"""``mqa-repro convert``: a trained run -> a grouped-query / multi-query run to uptrain
(mqa_repro.training.convert documents the conversion and the schedule).

    mqa-repro convert --from RUN --to NEW --kv-heads G [--init mean|first|random] [--step S]
                      [--uptrain-fraction 0.05] [--config.KEY=VALUE ...]
"""

from __future__ import annotations

import sys
from typing import Sequence

from mqa_repro.cli.common import Parser, stderr


def main(argv: Sequence[str]) -> int:
  from mqa_repro.training import convert
  p = Parser('mqa-repro convert', __doc__, overrides='the converted config (e.g. train.learning_rate)')
  p.add_argument('--from', dest='source', required=True, help='a trained run directory')
  p.add_argument('--to', dest='target', required=True, help='the new run directory (must not exist yet)')
  p.add_argument('--kv-heads', type=int, required=True, help='G: 1 = multi-query; must divide the '
                 "source's kv heads")
  p.add_argument('--init', choices=convert.INITS, default='mean', help='how each group of K/V heads becomes one')
  p.add_argument('--step', type=int, default=None, help="the source's checkpoint step (default: latest)")
  p.add_argument('--uptrain-fraction', type=float, default=0.05,
                 help="uptraining steps as a fraction of the source's (default 0.05, the GQA paper's)")
  args, overrides = p.parse(argv)
  try:
    r = convert.convert_run(args.source, args.target, args.kv_heads, init=args.init, step=args.step,
                            fraction=args.uptrain_fraction, overrides=overrides, log=stderr)
  except (ValueError, FileNotFoundError) as e:
    stderr(f'mqa-repro convert: {e}')
    return 2
  print(f"convert: {r['source_name']} step {r['source_step']} ({r['source_kv_heads']} kv heads) -> "
        f"{args.target} with {r['kv_heads']} ({r['init']}): {r['params_after']:,} parameters, "
        f"{r['params_lost']:,} fewer ({100 * r['params_lost'] / r['params_before']:.1f}%); uptrain with "
        f"`mqa-repro train --workdir {args.target}` ({r['uptrain_steps']} steps)")
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
