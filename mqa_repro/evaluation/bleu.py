"""Translation quality with sacrebleu: corpus BLEU, chrF, and the paired bootstrap between systems.

BLEU is corpus BLEU of detokenised text with tokenize='intl' (the paper's, ``sacrebleu -tok intl``)
and '13a' (sacrebleu's default), each with its signature, so the numbers can be compared.
"""

from __future__ import annotations

from typing import Any, Sequence

from mqa_repro.report.records import BleuScore, ChrfScore

BLEU_TOKENIZERS = ('intl', '13a')   # the paper's first; 13a for comparison with most published work


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, BleuScore]:
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


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> ChrfScore:
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
      if i and float(r.score) == float(scores[name][0].score):
        # A difference of exactly zero is no evidence of one. sacrebleu counts resampled deviations
        # strictly larger than the observed difference, so where every resample ties (a copy of the
        # baseline, or BLEU 0 on both) it returns its smallest p, 1/(n+1).
        p = 1.0
      num = lambda x: None if x is None else float(x)  # noqa: E731  (numpy scalars -> JSON)
      out[system][key] = {'score': float(r.score), 'mean': num(r.mean), 'ci': num(r.ci), 'p_value': p}
  out['signatures'] = {keys[name]: str(sig) for name, sig in sigs.items()}
  return out
