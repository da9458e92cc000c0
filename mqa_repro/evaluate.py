"""``mqa-repro evaluate``: BLEU with sacrebleu, ln(PPL) per subword, perplexity per word.

    mqa-repro evaluate --hyp hyp.de --ref newstest2014.de [--json OUT]
        corpus BLEU of detokenised text with tokenize='intl' (the paper's, ``sacrebleu -tok intl``) and
        '13a' (sacrebleu's default), each with its signature, so the numbers can be compared.
    mqa-repro evaluate --workdir RUN [--split dev|test] [--step S] [--bleu [--beam N]] [--json OUT]
        a checkpoint on the run's eval split: translate -> ln(PPL) per target subword (Table 1);
        lm -> perplexity per WORD (Table 3: total log-loss over the word count). With --bleu a
        translation run also decodes the split's sources and scores them against its references.

Perplexity covers the examples the data layer's ``eval_batches`` yields (those that fit max_length);
BLEU covers every sentence (``eval_texts``), over-long sources truncated by the decoder.
Shape letters: B batch rows, T target length, V vocabulary.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mqa_repro import metrics

Array = jax.Array
BLEU_TOKENIZERS = ('intl', '13a')   # the paper's first; 13a for comparison with most published work


def _stderr(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# BLEU.


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, dict[str, Any]]:
  """Corpus BLEU of detokenised hypotheses against one reference each.

  Returns {'intl': {...}, '13a': {...}}, each with score, signature (sacrebleu's own string, e.g.
  'nrefs:1|case:mixed|eff:no|tok:intl|smooth:exp|version:2.6.0'), the n-gram precisions, brevity
  penalty and lengths, and sacrebleu's one-line summary.
  """
  from sacrebleu.metrics import BLEU
  hypotheses, references = list(hypotheses), list(references)
  if len(hypotheses) != len(references):
    raise ValueError(f'{len(hypotheses)} hypotheses but {len(references)} references: BLEU needs '
                     f'one hypothesis line per reference line')
  out = {}
  for tok in BLEU_TOKENIZERS:
    metric = BLEU(tokenize=tok)
    s = metric.corpus_score(hypotheses, [references])
    out[tok] = {'score': float(s.score), 'signature': str(metric.get_signature()),
                'precisions': [float(p) for p in s.precisions], 'bp': float(s.bp),
                'sys_len': int(s.sys_len), 'ref_len': int(s.ref_len), 'text': str(s)}
  return out


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
  """Corpus chrF (sacrebleu's defaults: character 6-grams, beta 2) with its signature."""
  from sacrebleu.metrics import CHRF
  hypotheses, references = list(hypotheses), list(references)
  if len(hypotheses) != len(references):
    raise ValueError(f'{len(hypotheses)} hypotheses but {len(references)} references')
  metric = CHRF()
  s = metric.corpus_score(hypotheses, [references])
  return {'score': float(s.score), 'signature': str(metric.get_signature()), 'text': str(s)}


def paired_bootstrap(baseline: tuple[str, Sequence[str]], systems: Sequence[tuple[str, Sequence[str]]],
                     references: Sequence[str], samples: int = 1000) -> dict[str, dict[str, Any]]:
  """sacrebleu's paired bootstrap resampling of each system against the baseline, for BLEU (tok intl,
  the paper's) and chrF: {system: {'bleu': {score, mean, ci, p_value}, 'chrf': {...}}, 'signatures':
  {...}}. p is the probability, under resampling of the test sentences, that the difference from the
  baseline arises by chance (sacrebleu's seed 12345 unless $SACREBLEU_SEED says otherwise)."""
  from sacrebleu.metrics import BLEU, CHRF
  from sacrebleu.significance import PairedTest
  named = [(baseline[0], list(baseline[1]))] + [(n, list(h)) for n, h in systems]
  for name, hyps in named:
    if len(hyps) != len(references):
      raise ValueError(f'{name}: {len(hyps)} hypotheses but {len(references)} references')
  metrics = {'bleu': BLEU(tokenize='intl'), 'chrf': CHRF()}
  sigs, scores = PairedTest(named, metrics, [list(references)], test_type='bs', n_samples=samples)()
  keys = {name: key for key, name in zip(metrics, [k for k in scores if k != 'System'])}
  out: dict[str, dict[str, Any]] = {}
  for i, system in enumerate(scores['System']):
    out[system] = {}
    for name, key in keys.items():
      r = scores[name][i]
      p = None if i == 0 else float(r.p_value)
      if i and named[i][1] == named[0][1]:
        p = 1.0   # sacrebleu counts strictly larger resampled differences: 1/(n+1) for a copy
      num = lambda x: None if x is None else float(x)  # noqa: E731  (numpy scalars -> JSON)
      out[system][key] = {'score': float(r.score), 'mean': num(r.mean), 'ci': num(r.ci), 'p_value': p}
  out['signatures'] = {keys[name]: str(sig) for name, sig in sigs.items()}
  return out


def _read_lines(path: str | Path) -> list[str]:
  text = Path(path).read_text(encoding='utf-8')
  lines = text.split('\n')
  if lines and lines[-1] == '':
    lines.pop()
  return lines


# --------------------------------------------------------------------------------------------------
# Perplexity.


@functools.partial(jax.jit, static_argnums=0)
def _batch_nll(model, params: Any, batch: dict[str, Array]) -> tuple[Array, Array]:
  """Summed NLL of the real target tokens of one (packed) batch, and their count."""
  logits = model.apply({'params': params}, batch)                       # [B, T, V] float32
  weights = metrics.weights_of(batch['targets'])                       # [B, T]
  return jnp.sum(metrics.token_nll(logits, batch['targets']) * weights), jnp.sum(weights)


def score(model, params: Any, batches: Iterable[dict[str, np.ndarray]]) -> dict[str, float]:
  """Total NLL (nats) and token count of `batches` under the model: {'nll_sum', 'tokens'}.

  One jitted function per batch shape (eval batches all share one); sums accumulate in float64 on
  the host so a long dev set does not lose precision.
  """
  import flax.linen as nn
  params = nn.meta.unbox(params)
  nll_sum, tokens = 0.0, 0.0
  for batch in batches:
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    n, w = _batch_nll(model, params, batch)
    nll_sum += float(n)
    tokens += float(w)
  return {'nll_sum': nll_sum, 'tokens': tokens}


def perplexity(config, params: Any, data, split: str = 'dev',
               batch_size: int | None = None) -> dict[str, Any]:
  """ln(PPL) per subword (both tasks) and perplexity per word (lm) of a model on `data`'s split.

  `data` is the data layer's ``TaskData`` (anything with ``eval_batches(split, batch_size)`` and, for
  lm, ``word_count(split)``).
  """
  from mqa_repro import model as mdl
  model = mdl.make_model(config, dropout_rate=0.0, attention_dropout_rate=0.0, relu_dropout_rate=0.0)
  s = score(model, params, data.eval_batches(split, batch_size))
  out: dict[str, Any] = {'split': split, 'nll_sum': s['nll_sum'], 'tokens': int(s['tokens']),
                         'ln_ppl_per_subword': metrics.log_ppl(s['nll_sum'], s['tokens'])}
  if config.task == 'lm':
    words = data.word_count(split)
    out.update(words=int(words), word_perplexity=metrics.word_perplexity(s['nll_sum'], words))
  return out


# --------------------------------------------------------------------------------------------------
# Command line.


def _git_commit() -> str:
  try:
    return subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return 'unknown'


def _provenance(argv: Sequence[str]) -> dict[str, Any]:
  return {'command': 'mqa-repro evaluate ' + ' '.join(argv), 'git_commit': _git_commit(),
          'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
          'jax': jax.__version__, 'device': jax.devices()[0].device_kind}


def _print_bleu(result: dict[str, dict[str, Any]]) -> None:
  for tok, r in result.items():
    print(f"BLEU ({tok:>4}) = {r['score']:.2f}   {r['signature']}")
    print(f'             {r["text"]}')


def _checkpoint(args, argv: Sequence[str]) -> dict[str, Any]:
  from mqa_repro import checkpoint
  from mqa_repro.data import pipeline
  config, params, tokenizer = checkpoint.load_for_inference(args.workdir, step=args.step, log=_stderr)
  data = pipeline.load_task_data(config.task, config.data, args.workdir, log=_stderr)
  result: dict[str, Any] = {'workdir': str(args.workdir), 'config': config.name, 'task': config.task,
                            'step': args.step}
  result['perplexity'] = perplexity(config, params, data, args.split, args.batch_size)
  p = result['perplexity']
  print(f"{config.name} {args.split}: ln(PPL) per subword = {p['ln_ppl_per_subword']:.4f} "
        f"over {p['tokens']} tokens")
  if 'word_perplexity' in p:
    print(f"{config.name} {args.split}: perplexity per word = {p['word_perplexity']:.2f} "
          f"over {p['words']} words")
  if args.bleu:
    if config.task != 'translate':
      raise ValueError('--bleu needs a translation run')
    from mqa_repro import decode_cli
    sources, references = data.eval_texts(args.split)
    beam = args.beam if args.beam is not None else config.decode.beam_size
    hyps, stats = decode_cli.decode_lines(config, params, tokenizer, sources, beam_size=beam,
                                          alpha=config.decode.alpha,
                                          batch_size=config.decode.batch_size, log=_stderr)
    result['bleu'] = bleu(hyps, references)
    result['decode'] = stats
    if args.hyp_out:
      Path(args.hyp_out).write_text(''.join(h + '\n' for h in hyps), encoding='utf-8')
    _print_bleu(result['bleu'])
  return result


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  p = argparse.ArgumentParser(prog='mqa-repro evaluate', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--hyp', help='detokenised hypotheses, one per line')
  p.add_argument('--ref', help='reference translations, one per line')
  p.add_argument('--workdir', help='training run directory: score a checkpoint')
  p.add_argument('--split', default='dev', choices=('dev', 'test'))
  p.add_argument('--step', type=int, default=None, help='checkpoint step (default: the latest)')
  p.add_argument('--batch-size', type=int, default=None, help='eval rows per batch (default config)')
  p.add_argument('--bleu', action='store_true', help='with --workdir: also decode the split + BLEU')
  p.add_argument('--beam', type=int, default=None, help='beam size for --bleu (default config)')
  p.add_argument('--hyp-out', help='with --bleu: write the hypotheses here')
  p.add_argument('--json', help='write the results (with provenance) to this JSON file')
  args = p.parse_args(argv)

  if bool(args.hyp) != bool(args.ref):
    p.error('--hyp and --ref go together')
  if not args.hyp and not args.workdir:
    p.error('give --hyp FILE --ref FILE, or --workdir DIR')
  result: dict[str, Any] = {}
  try:
    if args.hyp:
      result['bleu'] = bleu(_read_lines(args.hyp), _read_lines(args.ref))
      result.update(hyp=str(args.hyp), ref=str(args.ref))
      _print_bleu(result['bleu'])
    if args.workdir:
      result['checkpoint'] = _checkpoint(args, argv)
  except (FileNotFoundError, ValueError) as e:
    _stderr(f'mqa-repro evaluate: {e}')
    return 2
  if args.json:
    result['provenance'] = _provenance(argv)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1, sort_keys=True) + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
