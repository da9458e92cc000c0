"""``mqa-repro reproduce``: train, score and decode every run of a preset, then tabulate
(mqa_repro.reproduce).

    mqa-repro reproduce --preset smoke|gpu|paper [--rows wmt_mha,lm_mqa@1,...] [--seeds N] [--steps N]
                        [--eval-sentences N] [--data offline|text|tfds|auto] [--results DIR]
                        [--workdirs DIR] [--prepare-data] [--skip-bench] [--no-tables] [--force]
                        [--fail-fast] [--config.KEY=VALUE ...]

Presets (mqa_repro.experiment; one code path, only sizes, data and budgets differ):
  smoke  CPU: the 'tiny' twin of every paper row, a few hundred steps on the offline corpus, decoded and
         scored on a few hundred sentences of each eval set. A pipeline check, not a quality claim.
  gpu    the scaled reproduction on real text: d_model 512 at the paper's depth, 3 seeds of multi-head
         and multi-query, full eval sets. Reads its training text from $MQA_REPRO_DATA.
  paper  the paper's configs (211M / 192M parameters, 100k / 136k steps): TPU pods and GPU clusters.
Exit codes: 0 done, 1 a run failed (the others still ran), 2 a bad flag or missing data.
"""

from __future__ import annotations

import sys
from typing import Sequence

from mqa_repro.cli.common import Parser, stderr


def parse_options(argv: Sequence[str]):
  """The command line -> reproduce.Options (argparse exits with 2 on a bad flag)."""
  from mqa_repro import experiment as xp
  from mqa_repro import reproduce
  from mqa_repro.data import datasets
  argv = list(argv)
  p = Parser('mqa-repro reproduce', __doc__, overrides='every run, after the preset\'s own changes')
  p.add_argument('--preset', required=True, choices=sorted(xp.PRESETS))
  p.add_argument('--rows', help="comma-separated rows, e.g. wmt_mha,lm_mqa; ROW@S = only seed S of it; "
                 "wmt / lm = that table's paper rows; all = every row, grouped-query included (default). "
                 "Runs go in the order given, one task at a time (a task's rows run together, its data "
                 "prepared once)")
  p.add_argument('--seeds', type=int, default=None,
                 help="seeds per row (default: the preset's, e.g. gpu: 3 for mha and mqa, 1 for others)")
  p.add_argument('--steps', type=int, default=0, help="training steps per run (default: the preset's)")
  p.add_argument('--eval-sentences', type=int, default=None,
                 help="first N sentences of each eval split (0 = all; default: the preset's)")
  p.add_argument('--data', choices=(*datasets.names(), 'auto'), default=None,
                 help="replace the preset's training text: the offline corpus, small real files under "
                      "$MQA_REPRO_DATA (text), TensorFlow Datasets' wmt14 / lm1b (tfds), or tfds when "
                      "reachable (auto)")
  p.add_argument('--results', default=None, help='results directory (default: ./runs/<preset>/results)')
  p.add_argument('--workdirs', default=None,
                 help='run directories: checkpoints, vocabularies, hypotheses (default: ./runs/<preset>/work)')
  p.add_argument('--prepare-data', action='store_true',
                 help='only build the vocabularies and token caches (to carry them to another machine)')
  p.add_argument('--skip-bench', action='store_true', help='do not run the speed benchmark')
  p.add_argument('--no-tables', action='store_true', help='do not write tables.md / CSV / plots')
  p.add_argument('--force', action='store_true', help='rerun runs whose results JSON exists (training '
                 'still resumes from the run\'s checkpoints; delete its run directory to retrain)')
  p.add_argument('--fail-fast', action='store_true', help='stop at the first failing run')
  args, overrides = p.parse(argv)
  p.check_at_least(steps=(args.steps, 0), eval_sentences=(args.eval_sentences, 0), seeds=(args.seeds, 1))
  return reproduce.Options(**vars(args), overrides=tuple(overrides), argv=tuple(argv))


def main(argv: Sequence[str]) -> int:
  options = parse_options(argv)
  from mqa_repro import reproduce
  from mqa_repro.training import sharding
  sharding.maybe_initialize_distributed()
  try:
    return reproduce.reproduce(options)
  except ValueError as e:
    stderr(f'mqa-repro reproduce: {e}')
    return 2


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
