"""`mqa-repro` command line: one entry point, a thin module per subcommand in this package.

Each subcommand module parses its flags (``common.Parser``: every one takes ``--config.KEY=VALUE``
for whatever config it runs), calls the libraries, and turns their errors into messages and exit
codes; nothing else imports this package. This file only dispatches, so ``mqa-repro train`` never
imports the benchmark, and nothing here imports JAX or TensorFlow.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

# subcommand -> (module in this package, one-line help)
COMMANDS = {
    'params': ('params', 'parameter counts of every table row (the equal-parameter rule)'),
    'data': ('data', 'build the offline corpus, vocabularies, input-pipeline benchmark'),
    'train': ('train', 'train one config (sharded, checkpointed, resumable)'),
    'decode': ('decode', 'translate / continue text from a checkpoint (greedy, beam, n-best)'),
    'evaluate': ('evaluate', 'BLEU (sacrebleu), ln(PPL) per subword, perplexity per word'),
    'bench': ('bench', 'speed: Table 2 and LM decoding beside peers, vs the roofline'),
    'tables': ('tables', "results JSON -> Tables 1-3 beside the paper's numbers, plots"),
    'reproduce': ('reproduce', 'the main job: train, decode, score and tabulate a preset'),
    'convert': ('convert', 'a trained run -> grouped-query / multi-query run to uptrain'),
    'parallel-check': ('parallel_check', 'the same steps and decodes on 1 device vs N, and scaling'),
}


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ('-h', '--help') or argv[0] not in COMMANDS:
    lines = [f'  {name:<15} {text}' for name, (_, text) in COMMANDS.items()]
    print('usage: mqa-repro <command> [flags] [--config.KEY=VALUE ...]   (mqa-repro <command> --help '
          'for its flags)\n\ncommands:\n' + '\n'.join(lines))
    if argv and argv[0] not in ('-h', '--help'):
      print(f'\nmqa-repro: unknown command {argv[0]!r}', file=sys.stderr)
      return 2
    return 0
  module = importlib.import_module(f'mqa_repro.cli.{COMMANDS[argv[0]][0]}')
  return int(module.main(argv[1:]) or 0)
