"""``mqa-repro evaluate``: BLEU with sacrebleu, ln(PPL) per subword, perplexity per word.

    mqa-repro evaluate --hyp hyp.de|- --ref newstest2014.de [--json OUT]
        corpus BLEU of detokenised text with tokenize='intl' (the paper's, ``sacrebleu -tok intl``) and
        '13a' (sacrebleu's default), each with its signature, so the numbers can be compared.
    mqa-repro evaluate --workdir RUN [--split dev|test] [--step S] [--bleu [--beam N] [--hyp-out F]]
                       [--json OUT] [--progress] [--config.KEY=VALUE ...]
        a checkpoint on the run's eval split: translate -> ln(PPL) per target subword (Table 1);
        lm -> perplexity per WORD (Table 3: total log-loss over the word count). With --bleu a
        translation run also decodes the split's sources and scores them against its references.

``--config.KEY=VALUE`` changes the run's saved config for this evaluation (e.g.
``--config.data.dev_files=...``, ``--config.model.attention_impl=pallas``); the parameters' shapes
cannot change. Every input is checked (files exist and are UTF-8, hypotheses and references have
the same number of lines, the run's config) before the checkpoint loads. Exit code 2: a bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from mqa_repro.cli.common import Parser, stderr
from mqa_repro.cli.decode import progress_printer


def _print_bleu(result: dict[str, dict[str, Any]]) -> None:
  for tok, r in result.items():
    print(f"BLEU ({tok:>4}) = {r['score']:.2f}   {r['signature']}")
    print(f'             {r["text"]}')


def _read(flag: str, path: str) -> list[str]:
  """A text input's lines, or a ValueError naming the flag (never a bare [Errno 2])."""
  from mqa_repro.decoding import text
  try:
    return text.read_input(path)
  except FileNotFoundError:
    raise ValueError(f'{flag} {path}: no such file') from None
  except ValueError as e:
    raise ValueError(f'{flag}: {e}') from None


def main(argv: Sequence[str]) -> int:
  argv = list(argv)
  p = Parser('mqa-repro evaluate', __doc__, overrides="the run's saved config.json (with --workdir)")
  p.add_argument('--hyp', help="detokenised hypotheses, one per line ('-' = stdin)")
  p.add_argument('--ref', help='reference translations, one per line')
  p.add_argument('--workdir', help='training run directory (local or gs://bucket/run): score a checkpoint')
  p.add_argument('--split', default='dev', choices=('dev', 'test'))
  p.add_argument('--step', type=int, default=None, help='checkpoint step (default: the latest)')
  p.add_argument('--batch-size', type=int, default=None, help='eval rows per batch (default config)')
  p.add_argument('--bleu', action='store_true', help='with --workdir: also decode the split + BLEU')
  p.add_argument('--beam', type=int, default=None, help='beam size for --bleu (default config)')
  p.add_argument('--hyp-out', help='with --bleu: write the hypotheses here')
  p.add_argument('--json', help='write the results (with provenance) to this JSON file')
  p.add_argument('--progress', action='store_true', help='decode progress lines on stderr (--bleu)')
  args, overrides = p.parse(argv)
  p.check_at_least(step=(args.step, 0), batch_size=(args.batch_size, 1), beam=(args.beam, 1))
  if bool(args.hyp) != bool(args.ref):
    p.error('--hyp and --ref go together')
  if not args.hyp and not args.workdir:
    p.error('give --hyp FILE --ref FILE, or --workdir DIR')
  if overrides and not args.workdir:
    p.error('--config.* overrides apply to a run: give --workdir')

  from mqa_repro import tasks
  from mqa_repro.evaluation.bleu import bleu
  from mqa_repro.evaluation.split import evaluate_split
  from mqa_repro.training import checkpoint
  from mqa_repro.report.records import EvaluateRecord
  result: EvaluateRecord = {}
  try:
    # Inputs first, all of them: nothing is scored or loaded until every one is usable.
    if args.hyp:
      hyps, refs = _read('--hyp', args.hyp), _read('--ref', args.ref)
      if len(hyps) != len(refs):
        raise ValueError(f'{len(hyps)} hypotheses (--hyp) but {len(refs)} references (--ref): BLEU '
                         f'needs one hypothesis line per reference line')
    if args.workdir:
      config = checkpoint.saved_config(args.workdir, overrides, keep_shapes=True)
      if args.bleu and not tasks.get(config.task).bleu:
        raise ValueError('--bleu needs a translation run')
      from mqa_repro.data import pipeline
      data = pipeline.load_task_data(config.task, config.data, args.workdir, log=stderr)
    if args.hyp:
      result['bleu'] = bleu(hyps, refs)
      result.update(hyp=str(args.hyp), ref=str(args.ref))
      _print_bleu(result['bleu'])
    if args.workdir:
      config, params, tokenizer = checkpoint.load_for_inference(args.workdir, step=args.step,
                                                                log=stderr, overrides=overrides)
      scores, hyps_out = evaluate_split(
          config, params, tokenizer, data, args.split, batch_size=args.batch_size,
          with_bleu=args.bleu, beam_size=args.beam, log=stderr,
          progress=progress_printer('evaluate', args.progress))
      result['checkpoint'] = {'workdir': str(args.workdir), 'step': args.step, **scores}
      ppl = scores['perplexity']
      print(f"{config.name} {args.split}: ln(PPL) per subword = {ppl['ln_ppl_per_subword']:.4f} "
            f"over {ppl['tokens']} tokens")
      if 'word_perplexity' in ppl:
        print(f"{config.name} {args.split}: perplexity per word = {ppl['word_perplexity']:.2f} "
              f"over {ppl['words']} words")
      if hyps_out is not None:
        if args.hyp_out:
          Path(args.hyp_out).write_text(''.join(h + '\n' for h in hyps_out), encoding='utf-8')
        _print_bleu(scores['bleu'])
  except (FileNotFoundError, ValueError) as e:
    stderr(f'mqa-repro evaluate: {e}')
    return 2
  if args.json:
    from mqa_repro import provenance
    from mqa_repro.report import records
    result['provenance'] = provenance.collect('mqa-repro evaluate', argv)
    records.write_json(args.json, dict(sorted(result.items())))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
