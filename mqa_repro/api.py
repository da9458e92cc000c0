"""The Python API: a trained run as an object, and a table row as a model.

    import mqa_repro

    run = mqa_repro.load_run('workdirs/smoke/wmt_mqa_tiny')          # newest intact checkpoint
    run.translate(['The house is small.', 'Hello'], beam=4)          # -> ['Das Haus ist klein.', ...]
    run.translate(lines, beam=4, nbest=2)                             # -> [[(text, score), ...], ...]
    run.perplexity([('The house is small.', 'Das Haus ist klein.')]) # -> {'ln_ppl_per_subword', ...}
    mqa_repro.bleu(hypotheses, references)                            # -> {'intl': {...}, '13a': {...}}

    lm = mqa_repro.load_run('workdirs/smoke/lm_mqa_tiny')
    lm.continue_text(['The government said'], max_new_tokens=20)      # -> [' on Monday that ...']
    lm.perplexity(['One sentence per line .'])                        # + 'word_perplexity', 'words'

    model = mqa_repro.build_model('wmt_mqa', size='tiny')            # config, module, abstract params
    mqa_repro.build_model('lm_gqa2', size='paper').num_params         # no memory allocated

Everything here runs through the same functions as the command line (``decoding.text``,
``evaluation``, ``training.checkpoint``), so its numbers are the CLI's. Bad arguments raise
TypeError / ValueError naming the argument (and the item: ``lines[3]``); bad files raise naming the
file (and the line), as the command line does.

Messages (a checkpoint loaded, inputs truncated to the position table) go to `log`; by default to
the ``mqa_repro`` logger, warnings at WARNING and the rest at INFO.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

Log = Callable[[str], None]
logger = logging.getLogger('mqa_repro')


def _log(message: str) -> None:
  (logger.warning if 'WARNING' in message else logger.info)(message)


def _strings(name: str, values: Any) -> list[str]:
  """`values` as a list of str, or a TypeError naming `name` and the offending item."""
  if isinstance(values, (str, bytes)):
    raise TypeError(f'{name} must be a list of strings, not one string (wrap it in a list)')
  values = list(values)
  for i, v in enumerate(values):
    if not isinstance(v, str):
      raise TypeError(f'{name}[{i}] must be a str, got {type(v).__name__}')
  return values


def _positive(**values: int | None) -> None:
  for name, v in values.items():
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
      raise ValueError(f'{name} must be a positive integer (or None for the config\'s), got {v!r}')


# --------------------------------------------------------------------------------------------------
# A table row as a model.


@dataclasses.dataclass(frozen=True)
class Model:
  """A row's config, its Flax module and its parameters' shapes (nothing allocated)."""
  config: Any               # ml_collections.ConfigDict
  module: Any               # nn.transformer.Transformer
  abstract_params: Any      # pytree of jax.ShapeDtypeStruct

  @property
  def num_params(self) -> int:
    from mqa_repro.nn import transformer
    return transformer.count_params(self.abstract_params)

  def init(self, seed: int = 0) -> Any:
    """Fresh parameters, the model's own initialisation."""
    import flax.linen as nn
    import jax
    from mqa_repro.nn import transformer
    batch = transformer.dummy_batch(self.config.task, 1, 4)
    return nn.meta.unbox(jax.jit(self.module.init)(jax.random.PRNGKey(seed), batch)['params'])


def build_model(row: str, size: str = 'paper', overrides: Sequence[str] = ()) -> Model:
  """The model of a table row named as on the command line ('wmt_mqa', 'lm_gqa2', ...) at a size
  ('paper', 'gpu', 'tiny'), with ``KEY=VALUE`` config overrides (e.g. 'model.window=32')."""
  import flax.linen as nn

  from mqa_repro import config as cfg
  from mqa_repro.nn import transformer
  task, name = cfg.split_row(row)
  c = cfg.row_config(task, name, size)
  cfg.apply_overrides(c, _strings('overrides', overrides))
  cfg.validate(c)
  module = transformer.make_model(c)
  return Model(c, module, nn.meta.unbox(transformer.abstract_params(module, task)))


# --------------------------------------------------------------------------------------------------
# A trained run.


# tasks.Task.decoding -> the Run method that decodes that way.
_METHOD_OF = {'translate': 'translate', 'continue': 'continue_text'}


class _Rows:
  """A data source (mqa_repro.data.datasets) over rows held in memory: every split is them."""

  def __init__(self, rows: list[tuple[str, ...]], what: str):
    self._rows, self._what = rows, what
    self._key = hashlib.sha256(repr(rows).encode()).hexdigest()

  def rows(self, split: str):
    return iter(self._rows)

  def fingerprint(self, split: str) -> str:
    return 'memory:' + self._key

  def describe(self, split: str) -> str:
    return self._what

  def files(self, split: str) -> list:
    return []


@dataclasses.dataclass
class Run:
  """A trained run loaded for inference (``load_run``): its config (the run's config.json with any
  overrides), its parameters and its tokenizer. `mesh`: the device mesh the parameters live on
  (None: one device)."""
  workdir: Path
  config: Any
  params: Any
  tokenizer: Any
  mesh: Any = None
  log: Log = _log

  @property
  def task(self):
    from mqa_repro import tasks
    return tasks.get(self.config.task)

  def _refuse_unless(self, method: str) -> None:
    """translate on a translation run, continue_text on an LM: the other one names the right one."""
    right = _METHOD_OF[self.task.decoding]
    if method != right:
      raise ValueError(f'{self.config.name} is a {self.config.task!r} run: use {right}')

  def _generate(self, name: str, texts: Sequence[str], nbest: int, beam: int | None,
                alpha: float | None, batch_size: int | None, **kwargs: Any) -> list:
    from mqa_repro.decoding import text
    texts = _strings(name, texts)
    _positive(beam=beam, batch_size=batch_size)
    d = self.config.decode
    kwargs.update(beam_size=beam or d.beam_size, alpha=d.alpha if alpha is None else alpha,
                  batch_size=batch_size or d.batch_size, log=self.log, mesh=self.mesh)
    if nbest:
      return text.decode_nbest(self.config, self.params, self.tokenizer, texts, nbest, **kwargs)[0]
    return text.decode_lines(self.config, self.params, self.tokenizer, texts, **kwargs)[0]

  def translate(self, lines: Sequence[str], beam: int | None = 4, *, alpha: float | None = None,
                batch_size: int | None = None, nbest: int = 0) -> list:
    """Translate each line (a translation run): the best hypothesis of each, in order; with `nbest`
    the `nbest` best as [(text, beam score)] per line. None takes config.decode's setting. An empty
    line gives '' (score NaN); a line longer than the position table is truncated (logged)."""
    self._refuse_unless('translate')
    return self._generate('lines', lines, nbest, beam, alpha, batch_size)

  def continue_text(self, prompts: Sequence[str], max_new_tokens: int = 64, beam: int | None = 1, *,
                    alpha: float | None = None, batch_size: int | None = None,
                    nbest: int = 0) -> list:
    """Continue each prompt (an LM run): the new text only, in order; `nbest` as for translate."""
    self._refuse_unless('continue_text')
    _positive(max_new_tokens=max_new_tokens)
    return self._generate('prompts', prompts, nbest, beam, alpha, batch_size,
                          max_new_tokens=max_new_tokens)

  def _row(self, i: int, r: Any) -> tuple[str, ...]:
    """One in-memory item of perplexity's `data` as a row of the task's sides."""
    sides = self.task.sides
    if isinstance(r, str):
      row = tuple(r.split('\t')) if len(sides) > 1 else (r,)
    else:
      row = tuple(r) if isinstance(r, (tuple, list)) else ()
    if len(row) != len(sides) or not all(isinstance(t, str) for t in row):
      want = ('a (source, target) pair of str or a "source<TAB>target" str' if len(sides) > 1
              else 'a str (one sentence)')
      raise ValueError(f'data[{i}] must be {want} for a {self.config.task!r} run, got {r!r:.80}')
    return row

  def _read(self, data: str | os.PathLike | Iterable, stats) -> tuple[list[tuple[str, ...]], str]:
    """perplexity's `data`, read as the data layer reads text -> (rows, where they came from)."""
    from mqa_repro.data import sources
    if isinstance(data, (str, os.PathLike)):
      if self.task.encoder:
        return list(sources.read_parallel(data, stats=stats, log=self.log)), str(data)
      return [(t,) for t in sources.read_monolingual(data, stats=stats, log=self.log)], str(data)
    numbered = [(i + 1, self._row(i, r)) for i, r in enumerate(data)]
    what = f'{len(numbered)} rows given in Python'
    return list(sources.filter_rows(iter(numbered), what, stats=stats, log=self.log)), what

  def perplexity(self, data: str | os.PathLike | Iterable, batch_size: int | None = None
                 ) -> dict[str, Any]:
    """The model's loss on text: {'ln_ppl_per_subword', 'tokens', 'nll_sum', 'scored', 'left_out'}
    and, for an LM, 'word_perplexity' and 'words' (Table 3's unit: whitespace words + 1 per
    sentence).

    `data`: a file (an LM: one sentence per line; translation: ``PREFIX`` with ``PREFIX.en`` /
    ``PREFIX.de``, or a ``.tsv``), or in memory: sentences (LM) or (source, target) pairs, or
    ``source<TAB>target`` strings (translation). Either is read as evaluation reads its files: empty
    and over-long lines are skipped, and so are examples longer than the position table
    (``scored`` counts the examples scored, ``left_out`` those skipped)."""
    import ml_collections

    from mqa_repro.data import pipeline, sources
    from mqa_repro.evaluation.perplexity import perplexity
    _positive(batch_size=batch_size)
    stats = sources.ReadStats()
    rows, what = self._read(data, stats)
    d = ml_collections.ConfigDict(self.config.data.to_dict())
    d.update(dev_split='dev', max_eval_examples=0)
    held = pipeline.TaskData(task=self.config.task, tokenizer=self.tokenizer, config=d,
                             source=_Rows(rows, what), cache_dir=None, log=self.log)
    scored = held.summary('dev')['kept']
    if not scored:
      raise ValueError(f'nothing to score in {what}: {stats.skipped} rows empty or over-long, '
                       f'{len(rows)} longer than the position table ({d.max_length} tokens)')
    out = dict(perplexity(self.config, self.params, held, 'dev', batch_size, mesh=self.mesh))
    del out['split']
    out.update(scored=scored, left_out=stats.skipped + len(rows) - scored)
    return out


def load_run(workdir: str | os.PathLike, step: int | None = None, *, overrides: Sequence[str] = (),
             mesh: Any = None, log: Log = _log) -> Run:
  """A run directory written by ``mqa-repro train`` / ``reproduce``, at its newest intact checkpoint
  (or `step`), with ``KEY=VALUE`` overrides of its saved config (e.g. 'model.attention_impl=pallas';
  not the parameters' shapes), onto one device or sharded over `mesh`. A missing or damaged file
  raises naming it."""
  from mqa_repro.training import checkpoint
  config, params, tokenizer = checkpoint.load_for_inference(
      workdir, step, log, mesh=mesh, overrides=_strings('overrides', overrides))
  return Run(Path(workdir), config, params, tokenizer, mesh, log)


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, dict[str, Any]]:
  """Corpus BLEU with sacrebleu, tokenize 'intl' (the paper's) and '13a', each with its signature."""
  from mqa_repro.evaluation.bleu import bleu as corpus_bleu
  return corpus_bleu(_strings('hypotheses', hypotheses), _strings('references', references))
