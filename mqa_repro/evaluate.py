"""Scores: BLEU and chrF with sacrebleu, the paired bootstrap between systems, ln(PPL) per subword and
perplexity per word.

BLEU is corpus BLEU of detokenised text with tokenize='intl' (the paper's, ``sacrebleu -tok intl``)
and '13a' (sacrebleu's default), each with its signature, so the numbers can be compared.
Perplexity: translate -> ln(PPL) per target subword (Table 1); lm -> perplexity per WORD (Table 3:
total log-loss over the word count). It covers the examples the data layer's ``eval_batches``
yields (those that fit max_length); BLEU covers every sentence (``eval_texts``), over-long sources
truncated by the decoder. ``mqa-repro evaluate`` (cli/evaluate.py) is the command line.
Shape letters: B batch rows, T target length, V vocabulary.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mqa_repro import metrics

Array = jax.Array
BLEU_TOKENIZERS = ('intl', '13a')   # the paper's first; 13a for comparison with most published work


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
# A run's checkpoint on its eval split.


def evaluate_checkpoint(config, params: Any, tokenizer, data, split: str = 'dev', *,
                        batch_size: int | None = None, with_bleu: bool = False,
                        beam_size: int | None = None, log: Callable[[str], None] = print,
                        progress: Callable[[int, int, float], None] | None = None
                        ) -> tuple[dict[str, Any], list[str] | None]:
  """Perplexity of a run on `data`'s split and, `with_bleu` (translation runs), BLEU of its decodes
  of the split's sources: (record, the hypotheses or None)."""
  result: dict[str, Any] = {'config': config.name, 'task': config.task,
                            'perplexity': perplexity(config, params, data, split, batch_size)}
  if not with_bleu:
    return result, None
  if config.task != 'translate':
    raise ValueError('--bleu needs a translation run')
  from mqa_repro.decoding import text
  sources, references = data.eval_texts(split)
  hyps, stats = text.decode_lines(config, params, tokenizer, sources,
                                  beam_size=beam_size or config.decode.beam_size,
                                  alpha=config.decode.alpha, batch_size=config.decode.batch_size,
                                  log=log, progress=progress)
  result['bleu'] = bleu(hyps, references)
  result['decode'] = stats
  return result, hyps
