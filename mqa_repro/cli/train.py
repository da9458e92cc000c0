"""``mqa-repro train``: train one config; resumes when the run directory holds checkpoints.

    mqa-repro train --config configs/wmt_mqa.py[:tiny|gpu] --workdir DIR [--config.KEY=VALUE ...]
    mqa-repro train --workdir DIR [--config.KEY=VALUE ...]      # the run's own config.json

Exit codes: 0 done, 2 a config or file problem (nothing ran), 3 training diverged (the message says
which checkpoint a rerun resumes from).
"""

from __future__ import annotations

import json
import sys
from typing import Sequence

from mqa_repro.cli.common import Parser, stderr


def run_config(spec: str | None, workdir: str, overrides: Sequence[str]):
  """The config file `spec` with overrides, or without one the run directory's own config.json."""
  from mqa_repro.training import checkpoint
  from mqa_repro import config as cfg
  from mqa_repro import paths
  saved = paths.run_path(workdir, '--workdir') / 'config.json'   # local or gs://
  if spec:
    return cfg.load_config(spec, overrides)
  if not saved.is_file():
    raise FileNotFoundError(f'--config is needed: {saved} does not exist (a new run needs a config '
                            f'file)')
  return checkpoint.saved_config(workdir, overrides)


def main(argv: Sequence[str]) -> int:
  p = Parser('mqa-repro train', __doc__, overrides='the config file, or the run\'s config.json')
  p.add_argument('--config', default=None,
                 help="config file, optionally with a size: configs/wmt_mqa.py:tiny (default: the "
                      "run directory's own config.json, to resume or uptrain a run)")
  p.add_argument('--workdir', required=True,
                 help='run directory (checkpoints, metrics, vocab): a local path or gs://bucket/run')
  args, overrides = p.parse(argv)
  from mqa_repro.training import sharding, trainer
  sharding.maybe_initialize_distributed()
  try:
    run = trainer.Trainer.from_config(run_config(args.config, args.workdir, overrides), args.workdir)
  except (ValueError, FileNotFoundError) as e:
    stderr(f'mqa-repro train: {e}')
    return 2
  try:
    summary = run.train_and_evaluate()
  except trainer.NonFiniteLoss as e:
    stderr(str(e))
    return 3
  print(json.dumps(summary))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
