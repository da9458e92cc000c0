"""What TensorBoard shows of a run besides its scalars: a fixed dev sample decoded at eval steps.

At every in-training evaluation (``config.train.eval_every``), when TensorBoard is on:

  translate  the first ``train.tb_bleu_sentences`` dev sentences are translated GREEDILY with the
             project's decoder (decoding/text.py) and scored by corpus BLEU (evaluation/bleu.py,
             tok intl, the paper's): scalar ``eval/dev_sample_bleu``; the first ``train.tb_samples``
             go to TensorBoard as text (source / reference / hypothesis).
  lm         the first ``train.tb_samples`` dev sentences are cut after a few words, and the model
             continues each greedily (prompt / reference continuation / model continuation).

The sample is fixed (the same sentences every time) and small, so its decode compiles ONCE per run
(one batch shape: decoding/text.py pads it) and costs a fraction of a second per eval afterwards.
This BLEU is a progress signal on a few sentences, not the paper's metric: ``reproduce`` and
``evaluate`` decode the whole test sets for that. 0 in both fields turns the decoding off.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import ml_collections

from mqa_repro import tasks
from mqa_repro.report.format import md_table

Log = Callable[[str], None]
PROMPT_WORDS = 8        # an LM prompt: at most this many words of a dev sentence (at most half of it)
NEW_TOKENS = 24         # ... continued by at most this many tokens


def _cell(text: str, limit: int = 400) -> str:
  """One markdown table cell: no newlines or pipes, long text cut."""
  text = ' '.join(text.split()).replace('|', '\\|')
  return text if len(text) <= limit else text[:limit - 1] + '…'


def lm_prompt(sentence: str) -> tuple[str, str]:
  """(prompt, the rest): the first min(PROMPT_WORDS, half) words of a sentence, at least one."""
  words = sentence.split()
  cut = max(1, min(PROMPT_WORDS, len(words) // 2))
  return ' '.join(words[:cut]), ' '.join(words[cut:])


@dataclasses.dataclass
class DevSample:
  """A fixed sample of dev sentences and what to log about its decoding (module docstring)."""
  config: ml_collections.ConfigDict
  tokenizer: Any
  inputs: list[str]          # sources, or LM prompts
  references: list[str]      # references, or the sentences' true continuations
  bleu_sentences: int        # score the first N (translate); 0 = no BLEU
  shown: int                 # log the first N as text
  mesh: Any = None

  @classmethod
  def from_data(cls, config: ml_collections.ConfigDict, data: Any, mesh: Any = None,
                split: str = 'dev') -> 'DevSample | None':
    """The sample of a run's TaskData, or None when the config asks for none."""
    t, task = config.train, tasks.get(config.task)
    bleu_sentences = t.get('tb_bleu_sentences', 0) if task.bleu else 0
    shown = t.get('tb_samples', 0)
    wanted = max(bleu_sentences, shown)
    if not wanted:
      return None
    sources, references = data.eval_texts(split)
    pairs = [(s, r) for s, r in zip(sources, references) if s.strip()][:wanted]
    if task.decoding == 'continue':
      pairs = [lm_prompt(s) for s, _ in pairs]
    if not pairs:
      return None
    return cls(config, data.tokenizer, [p[0] for p in pairs], [p[1] for p in pairs],
               min(bleu_sentences, len(pairs)), min(shown, len(pairs)), mesh)

  def run(self, params: Any, log: Log = lambda m: None) -> tuple[dict[str, float], str]:
    """Decode the sample greedily with `params` -> (metrics.jsonl entries, a markdown table)."""
    from mqa_repro.decoding import text as decoding
    hypotheses, _ = decoding.decode_lines(
        self.config, params, self.tokenizer, self.inputs, beam_size=1, batch_size=len(self.inputs),
        max_new_tokens=NEW_TOKENS, log=log, mesh=self.mesh)
    metrics: dict[str, float] = {}
    if self.bleu_sentences:
      from mqa_repro.evaluation import bleu
      n = self.bleu_sentences
      metrics['eval_sample_bleu'] = bleu.bleu(hypotheses[:n], self.references[:n])['intl']['score']
    header = (('source', 'reference', 'greedy translation') if tasks.get(self.config.task).encoder
              else ('prompt', 'the sentence goes on', 'greedy continuation'))
    rows = list(zip(self.inputs, self.references, hypotheses))[:self.shown]
    table = md_table(header, [[_cell(c) for c in row] for row in rows])
    return metrics, '\n'.join(table) if rows else ''
