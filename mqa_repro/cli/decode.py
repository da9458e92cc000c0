"""``mqa-repro decode``: text in, detokenised hypotheses out, one line per input line.

    mqa-repro decode --workdir RUN [--input FILE|-] [--output FILE|-] [--beam 4] [--alpha 0.6]
                     [--batch-size 64] [--step S] [--nbest N] [--progress] [--config.KEY=VALUE ...]
    mqa-repro decode --workdir RUN --split dev|test --output OUT      # the run's own eval text

Translation runs translate each line; LM runs continue it (the output is the continuation only).
'-' is standard input / output. With ``--nbest N`` the output is TSV, N lines per input line:
``index<TAB>score<TAB>hypothesis`` (index 0-based, best first; the score is the beam search's:
log-probability over the length penalty).

``--config.KEY=VALUE`` changes the run's saved config for this decode, e.g.
``--config.model.attention_impl=pallas`` (the Pallas decode kernels), ``--config.decode.dtype=``
(the model's own dtype: faster, batch-dependent); anything that would change the parameters' shapes
is refused. Every input is checked (the files exist and are UTF-8, the flags fit the config) before
the checkpoint loads. Progress lines go to stderr when it is a terminal, or with ``--progress``.
Over-long inputs and position-table length caps are reported once. Exit code 2: a bad input, flag or
run directory.
"""

from __future__ import annotations

import sys
from typing import Sequence

from mqa_repro.cli.common import Parser, stderr


def progress_printer(prog: str, asked: bool):
  """A decode_lines progress callback printing one line per batch, or None when stderr is not a
  terminal and progress was not asked for."""
  if not (asked or sys.stderr.isatty()):
    return None

  def show(done: int, total: int, seconds: float) -> None:
    rate = done / seconds if seconds > 0 else 0.0
    stderr(f'{prog}: {done}/{total} sentences, {rate:.1f} sentences/s')
  return show


def build_parser() -> Parser:
  p = Parser('mqa-repro decode', __doc__, overrides="the run's saved config.json (this decode only)")
  p.add_argument('--workdir', required=True, help='training run directory (config.json, checkpoints): local or gs://bucket/run')
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument('--input', help="text file, one source sentence (or prompt) per line; '-' = stdin")
  src.add_argument('--split', choices=('dev', 'test'),
                   help="the run's own data source instead of a file (config.data: offline corpus, "
                        "text files or a tfds split such as wmt14_translate/de-en test); the sources "
                        "go to OUTPUT.src and the references to OUTPUT.ref, for mqa-repro evaluate")
  p.add_argument('--output', default='-', help="where to write the hypotheses ('-' = stdout, the "
                 'default)')
  p.add_argument('--beam', type=int, default=None, help='beam size (1 = greedy; default config.decode)')
  p.add_argument('--alpha', type=float, default=None, help='length penalty exponent (default config)')
  p.add_argument('--batch-size', type=int, default=None, help='sentences per batch (default config)')
  p.add_argument('--step', type=int, default=None, help='checkpoint step (default: the latest)')
  p.add_argument('--max-new-tokens', type=int, default=64, help='LM only: tokens to add per prompt')
  p.add_argument('--nbest', type=int, default=None,
                 help='write the N best hypotheses of every input with their scores (TSV; N <= beam)')
  p.add_argument('--progress', action='store_true',
                 help='a progress line per batch on stderr even when it is not a terminal')
  p.add_argument('--decode-dtype', choices=('float32', 'model'), default=None,
                 help="float32: hypotheses that do not depend on --batch-size; model: the model's "
                      "dtype (bfloat16: faster, batch-dependent); default config.decode.dtype "
                      "(the same as --config.decode.dtype)")
  return p


def main(argv: Sequence[str]) -> int:
  p = build_parser()
  args, overrides = p.parse(argv)
  p.check_at_least(beam=(args.beam, 1), batch_size=(args.batch_size, 1), alpha=(args.alpha, 0),
                   step=(args.step, 0), max_new_tokens=(args.max_new_tokens, 1), nbest=(args.nbest, 1))
  if args.split and args.output == '-':
    p.error('--split writes OUTPUT.src and OUTPUT.ref beside the hypotheses: give --output FILE')
  if args.decode_dtype is not None:
    overrides.append(f"--config.decode.dtype={'' if args.decode_dtype == 'model' else args.decode_dtype}")

  from mqa_repro.training import checkpoint
  from mqa_repro.decoding import text
  try:
    # Everything the decode needs is checked first: a bad input is reported before minutes go into
    # loading the checkpoint.
    lines = text.read_input(args.input) if args.input else None
    config = checkpoint.saved_config(args.workdir, overrides, keep_shapes=True)
    beam = args.beam if args.beam is not None else config.decode.beam_size
    if args.nbest is not None and args.nbest > beam:
      raise ValueError(f'--nbest {args.nbest} needs a beam of at least {args.nbest} (the beam '
                       f'is {beam}: --beam or --config.decode.beam_size)')
    if args.split:
      from mqa_repro.data.pipeline import load_task_data
      data = load_task_data(config.task, config.data, args.workdir, log=stderr)
      lines, references = data.eval_texts(args.split)
    config, params, tokenizer = checkpoint.load_for_inference(args.workdir, step=args.step,
                                                              log=stderr, overrides=overrides)
  except (FileNotFoundError, ValueError) as e:
    stderr(f'mqa-repro decode: {e}')
    return 2
  if args.split:
    text.write_output(args.output + '.src', lines)
    text.write_output(args.output + '.ref', references)
  kwargs = dict(beam_size=beam, alpha=args.alpha if args.alpha is not None else config.decode.alpha,
                batch_size=args.batch_size or config.decode.batch_size,
                max_new_tokens=args.max_new_tokens, log=stderr,
                progress=progress_printer('decode', args.progress))
  if args.nbest:
    nbest, stats = text.decode_nbest(config, params, tokenizer, lines, args.nbest, **kwargs)
    text.write_nbest(args.output, nbest)
  else:
    outputs, stats = text.decode_lines(config, params, tokenizer, lines, **kwargs)
    text.write_output(args.output, outputs)
  where = 'stdout' if args.output == '-' else args.output
  stderr(f"decode: {stats['lines']} lines ({stats['empty']} empty, {stats['truncated']} truncated) "
         f"-> {where} in {stats['seconds']:.1f}s, {stats['tokens_per_second']:.0f} tokens/s, "
         f"beam {beam}" + (f', {args.nbest}-best' if args.nbest else ''))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
