"""A trained run on one eval split: its perplexity and, for translation, BLEU of its decodes."""

from __future__ import annotations

from typing import Any, Callable

from mqa_repro import tasks
from mqa_repro.evaluation.bleu import bleu
from mqa_repro.evaluation.perplexity import perplexity


def evaluate_split(config, params: Any, tokenizer, data, split: str = 'dev', *,
                   batch_size: int | None = None, with_bleu: bool = False,
                   beam_size: int | None = None, log: Callable[[str], None] = print,
                   progress: Callable[[int, int, float], None] | None = None, mesh=None
                   ) -> tuple[dict[str, Any], list[str] | None]:
  """Perplexity of a run on `data`'s split and, `with_bleu` (translation runs), BLEU of its decodes
  of the split's sources: (record, the hypotheses or None). `mesh`: score and decode sharded."""
  result: dict[str, Any] = {'config': config.name, 'task': config.task,
                            'perplexity': perplexity(config, params, data, split, batch_size, mesh)}
  if not with_bleu:
    return result, None
  if not tasks.get(config.task).bleu:
    raise ValueError(f'BLEU needs a translation run, not {config.task!r}')
  from mqa_repro.decoding import text
  sources, references = data.eval_texts(split)
  hyps, stats = text.decode_lines(config, params, tokenizer, sources,
                                  beam_size=beam_size or config.decode.beam_size,
                                  alpha=config.decode.alpha, batch_size=config.decode.batch_size,
                                  log=log, progress=progress, mesh=mesh)
  result['bleu'] = bleu(hyps, references)
  result['decode'] = stats
  return result, hyps
