"""`mqa-repro` command line: one entry point, a thin subcommand per pipeline stage.

Each subcommand lives with its stage and exposes ``main(argv) -> int``; this file only dispatches, so
``mqa-repro train`` never imports the benchmark, and nothing here imports TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Sequence

# subcommand -> (module, one-line help)
COMMANDS = {
    'params': ('mqa_repro.cli', 'parameter counts of every table row (the equal-parameter rule)'),
    'data': ('mqa_repro.data.cli', 'build the offline corpus, vocabularies, input-pipeline benchmark'),
    'train': ('mqa_repro.train', 'train one config (sharded, checkpointed, resumable)'),
    'decode': ('mqa_repro.decode_cli', 'translate / continue text from a checkpoint (greedy or beam)'),
    'evaluate': ('mqa_repro.evaluate', 'BLEU (sacrebleu), ln(PPL) per subword, perplexity per word'),
    'bench': ('mqa_repro.bench.cli', 'speed: Table 2 and LM decoding beside peers, vs the roofline'),
    'tables': ('mqa_repro.tables', "results JSON -> Tables 1-3 beside the paper's numbers, plots"),
    'reproduce': ('mqa_repro.reproduce', 'the main job: train, decode, score and tabulate a preset'),
    'convert': ('mqa_repro.convert', 'a trained run -> grouped-query / multi-query run to uptrain'),
}


def params_main(argv: Sequence[str]) -> int:
  """``mqa-repro params [--json] [--size paper|gpu|tiny] [--config FILE ...]``."""
  from mqa_repro import config as cfg
  from mqa_repro import model as mdl

  parser = argparse.ArgumentParser(prog='mqa-repro params', description=params_main.__doc__)
  parser.add_argument('--json', action='store_true', help='one JSON list instead of a table')
  parser.add_argument('--size', default='paper', choices=sorted(cfg.SIZES))
  parser.add_argument('--config', action='append', default=[],
                      help='config file(s) (default: every row in configs/)')
  args = parser.parse_args(argv)

  if args.config:
    configs = [cfg.load_config(spec) for spec in args.config]
  else:
    configs = [cfg.row_config(task, row, args.size) for task in cfg.ROWS for row in cfg.ROWS[task]]
  rows = []
  for c in configs:
    m = c.model
    n = mdl.count_params(mdl.abstract_params(mdl.make_model(c), c.task))
    rows.append({'name': c.name, 'task': c.task, 'h': m.num_heads, 'g': m.num_kv_heads,
                 'd_k': m.qk_dim, 'd_v': m.v_dim, 'd_ff': m.d_ff, 'window': m.window,
                 'params': n, 'in_paper': c.row in cfg.PAPER_ROWS[c.task]})
  if args.json:
    print(json.dumps(rows, indent=1))
    return 0
  print(f"{'config':<22}{'h':>3}{'g':>3}{'d_k':>5}{'d_v':>5}{'d_ff':>7}{'window':>8}{'params':>14}")
  for r in rows:
    window = r['window'] or '-'
    print(f"{r['name']:<22}{r['h']:>3}{r['g']:>3}{r['d_k']:>5}{r['d_v']:>5}{r['d_ff']:>7}"
          f"{window:>8}{r['params']:>14,}")
  return 0




def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ('-h', '--help') or argv[0] not in COMMANDS:
    lines = [f'  {name:<10} {text}' for name, (_, text) in COMMANDS.items()]
    print('usage: mqa-repro <command> [flags]   (mqa-repro <command> --help for its flags)\n\n'
          'commands:\n' + '\n'.join(lines))
    if argv and argv[0] not in ('-h', '--help'):
      print(f'\nmqa-repro: unknown command {argv[0]!r}', file=sys.stderr)
      return 2
    return 0
  name, rest = argv[0], argv[1:]
  if name == 'params':
    return params_main(rest)
  module = importlib.import_module(COMMANDS[name][0])
  return int(module.main(rest) or 0)


if __name__ == '__main__':
  sys.exit(main())
