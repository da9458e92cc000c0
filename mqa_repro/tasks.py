"""The paper's two tasks as values: what differs between translation and language modelling is data
here, and every other module reads it from the task record instead of testing the task's name.

A task fixes the shape of its examples (one text side or two), the model around the shared
attention layer (an encoder or not), the paper's recipe for it, how it is decoded, what it is scored
by and which of the paper's tables it fills. The text itself comes from a data source
(mqa_repro/data/datasets/), independent of the task: any source yields rows with one string per
side. docs/extending.md says how to add either.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Task:
  name: str                        # config.task
  prefix: str                      # config and run names: '<prefix>_<row>', e.g. 'wmt_mqa'
  title: str                       # short name in tables and plots
  sides: tuple[str, ...]           # batch key prefixes, source side first: one text string each
  table: int                       # the paper's table this task's rows fill
  table_title: str
  metrics: tuple[str, ...]         # what a run is scored by on its eval sets
  test_split: bool                 # evaluated on a test split too (translation decodes it for BLEU;
                                   # the LM table reports dev perplexity only)
  decoding: str                    # 'translate': source -> target; 'continue': prompt -> more of it
  tfds_name: str                   # TensorFlow Datasets name of the paper's data
  # The paper's recipe (mesh-tensorflow configs): shared embedding / softmax table, dropout on the
  # residual, the attention probabilities and after the ReLU, label smoothing.
  shared_embeddings: bool
  dropout: tuple[float, float, float]
  label_smoothing: float

  @property
  def encoder(self) -> bool:
    """An encoder-decoder (a source side to encode) or a decoder-only model."""
    return len(self.sides) == 2

  @property
  def word_perplexity(self) -> bool:
    return 'word_ppl' in self.metrics

  @property
  def bleu(self) -> bool:
    return 'bleu' in self.metrics


TRANSLATE = Task(
    name='translate', prefix='wmt', title='WMT', sides=('inputs', 'targets'), table=1,
    table_title='Table 1 — WMT14 EN→DE', metrics=('ln_ppl', 'bleu', 'chrf'), test_split=True,
    decoding='translate', tfds_name='wmt14_translate/de-en', shared_embeddings=True,
    dropout=(0.2, 0.1, 0.1), label_smoothing=0.1)
LM = Task(
    name='lm', prefix='lm', title='LM', sides=('targets',), table=3,
    table_title='Table 3 — Billion-Word LM, perplexity per word', metrics=('ln_ppl', 'word_ppl'),
    test_split=False, decoding='continue', tfds_name='lm1b', shared_embeddings=False,
    dropout=(0.0, 0.0, 0.0), label_smoothing=0.0)

TASKS = {t.name: t for t in (TRANSLATE, LM)}
BY_PREFIX = {t.prefix: t for t in TASKS.values()}


def get(name: str) -> Task:
  """The task of a config's ``task`` field."""
  try:
    return TASKS[name]
  except KeyError:
    raise ValueError(f'task must be one of {sorted(TASKS)}, got {name!r}') from None
