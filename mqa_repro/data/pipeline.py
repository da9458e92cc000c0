"""The data pipeline entry point: text source -> vocabulary -> tokenized, filtered, packed, batched.

    data = load_task_data('translate', config.data, workdir, host_index=i, host_count=n)
    for batch in data.train_batches(start_step=step): ...      # infinite, this host's rows
    for batch in data.eval_batches('dev'): ...                 # finite, each example exactly once
    sources, references = data.eval_texts('test')              # raw text for decoding + BLEU
    words = data.word_count('dev')                             # per-word perplexity denominator

Batches are dicts of int32 numpy arrays of fixed shape [rows, max_length] (``packing`` documents the
keys): translate ``inputs, inputs_segmentation, inputs_position, targets, targets_segmentation,
targets_position``; lm ``targets, targets_segmentation, targets_position``. Every example ends with
EOS; BOS is never added (the model shifts targets right and puts BOS at each segment start).

Sources (``data.source``): one module each in mqa_repro/data/datasets/ ('offline': the corpus built
from package registries by :mod:`mqa_repro.corpus`; 'text': local files; 'tfds': TensorFlow
Datasets), all serving rows with one string per task side (tasks.Task.sides). Any source's training split can be extended with ``data.extra_train_files`` (text files as for 'text',
read after the source's own training text; relative paths are looked up in ``$MQA_REPRO_DATA``).
Splits: methods take 'train', 'dev' or 'test'; 'dev' / 'test' go through ``data.dev_split`` /
``data.test_split`` (default 'dev' / 'test': tfds validation / test, the offline corpus' dev / test).

Length policy: examples longer than ``max_length`` tokens (EOS included) on either side are DROPPED and
counted in the log, never truncated. For eval this means ``eval_batches`` and ``word_count`` cover the
examples that fit (the model's position table cannot hold more), while ``eval_texts`` returns every
sentence so BLEU is computed on the whole test set.

Word counts (per-word perplexity, the paper's Table 3): for each kept eval example, the number of
whitespace-separated tokens of its raw target sentence plus one end-of-sentence.

``max_train_examples`` (the first N training examples) also bounds the text the vocabulary is trained on.

Caching: the vocabulary is trained once into ``workdir/vocab.model`` (kept with the run) unless
``data.vocab_path`` names one; tokenized splits are cached under ``workdir/data_cache/`` keyed by the
vocabulary's and the data's sha256, so a restart loads them with mmap instead of re-tokenizing.

Determinism and hosts: see :mod:`mqa_repro.data.packing`. Host i of n gets rows
[i·B/n, (i+1)·B/n) of every global batch of B rows, for training and eval alike. Bit-identical resume
assumes the same data, vocabulary, config and numpy version.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import os
from pathlib import Path
from typing import Callable, Iterator

import ml_collections
import numpy as np

from mqa_repro.data import examples as examples_lib
from mqa_repro.data import packing, sources
from mqa_repro.data.examples import Examples
from mqa_repro import tasks
from mqa_repro.data import datasets
from mqa_repro.data.tokenizer import Tokenizer, train_sentencepiece
REQUIRED_FIELDS = ('source', 'data_dir', 'train_files', 'dev_files', 'test_files', 'tfds_name',
                   'tfds_data_dir', 'vocab_size', 'vocab_path', 'spm_max_sentences', 'max_length', 'pack',
                   'batch_size', 'eval_batch_size', 'seed', 'max_train_examples', 'max_eval_examples',
                   'dev_split', 'test_split')

Log = Callable[[str], None]
Rows = Iterator[tuple[str, ...]]   # (english, german) for translate, (sentence,) for lm


def default_data_config(task: str = 'translate') -> ml_collections.ConfigDict:
  """The data fields with the paper's defaults (the experiment configs define the same fields)."""
  d = ml_collections.ConfigDict()
  d.source = 'offline'
  d.data_dir = ''
  d.train_files = ''
  d.extra_train_files = ''
  d.dev_files = ''
  d.test_files = ''
  d.tfds_name = tasks.get(task).tfds_name
  d.tfds_data_dir = ''
  d.vocab_size = 32000
  d.vocab_path = ''
  d.spm_max_sentences = 1_000_000
  d.max_length = 256
  d.pack = True
  d.batch_size = 128
  d.eval_batch_size = 128
  d.seed = 0
  d.max_train_examples = 0
  d.max_eval_examples = 0
  d.dev_split = 'dev'
  d.test_split = 'test'
  return d


# --------------------------------------------------------------------------------------------------
# Text sources (mqa_repro.data.datasets): rows of one split + a fingerprint that changes whenever the
# text does.


class _ExtendedSource:
  """A source whose training split continues with extra text files (``data.extra_train_files``)."""

  def __init__(self, base, extra: sources.FileSource):
    self.base, self.extra = base, extra

  def rows(self, split: str) -> Rows:
    yield from self.base.rows(split)
    if split == 'train':
      yield from self.extra.rows('train')

  def fingerprint(self, split: str) -> str:
    own = self.base.fingerprint(split)
    return own + '+' + self.extra.fingerprint('train') if split == 'train' else own

  def describe(self, split: str) -> str:
    own = self.base.describe(split)
    return own + ', ' + self.extra.describe('train') if split == 'train' else own

  def files(self, split: str) -> list[Path]:
    own = self.base.files(split)
    return own + self.extra.files('train') if split == 'train' else own


def _make_source(task: str, cfg: ml_collections.ConfigDict, log: Log):
  spec = tasks.get(task)
  base = datasets.make(spec, cfg, log)
  extra = sources.split_specs(cfg.get('extra_train_files', ''))
  if not extra:
    return base
  data_dir = sources.resolve_data_dir(None)
  specs = {'train': [sources.resolve_text_path(s, data_dir) for s in extra]}
  return _ExtendedSource(base, sources.FileSource(spec, specs, log, 'data.extra_train_files'))


# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)  # identity equality: instances hold caches, not values
class TaskData:
  """Tokenized splits of one task and the iterators over their batches (module docstring)."""
  task: str                # 'translate' | 'lm'
  tokenizer: Tokenizer
  config: ml_collections.ConfigDict = dataclasses.field(repr=False)
  host_index: int = 0
  host_count: int = 1
  source: object = dataclasses.field(default=None, repr=False)
  cache_dir: Path | None = None
  log: Log = dataclasses.field(default=print, repr=False)
  _memo: dict = dataclasses.field(default_factory=dict, repr=False)

  # ---- splits ------------------------------------------------------------------------------------

  def split_name(self, split: str) -> str:
    """'dev' / 'test' -> the configured split names; anything else unchanged."""
    return {'dev': self.config.dev_split, 'test': self.config.test_split}.get(split, split)

  def _limit(self, rows: Rows, limit: int) -> Rows:
    return itertools.islice(rows, limit) if limit else rows

  def _examples(self, split: str, rows: Callable[[], Rows], limit: int) -> Examples:
    key = hashlib.sha256(json.dumps({
        'task': self.task, 'vocab': self.tokenizer.fingerprint, 'data': self.source.fingerprint(split),
        'limit': limit, 'max_chars': sources.MAX_LINE_CHARS, 'format': examples_lib.CACHE_FORMAT,
    }, sort_keys=True).encode()).hexdigest()[:20]
    directory = self.cache_dir / f'{self.task}-{split}-{key}' if self.cache_dir else None

    def build() -> Examples:
      self.log(f"data: tokenizing {self.task} split {split!r} from {self.source.describe(split)}")
      return examples_lib.tokenize(rows(), self.tokenizer)

    return examples_lib.cached(directory, build, {'split': split, 'limit': limit}, self.log)

  def _kept(self, split: str, ex: Examples) -> np.ndarray:
    """Indices of the examples that fit max_length; logs how many were dropped."""
    fits = ex.fits(self.config.max_length)
    dropped = int(len(ex) - fits.sum())
    if dropped:
      self.log(f"data: {split}: dropped {dropped} of {len(ex)} examples longer than max_length="
               f"{self.config.max_length} tokens ({100 * dropped / max(len(ex), 1):.2f}%)")
    return np.flatnonzero(fits)

  @functools.cached_property
  def _train(self) -> tuple[Examples, np.ndarray]:
    ex = self._examples('train', lambda: self._limit(self.source.rows('train'),
                                                     self.config.max_train_examples),
                        self.config.max_train_examples)
    keep = self._kept('train', ex)
    if not len(keep):
      raise ValueError(f"no training examples fit max_length={self.config.max_length} "
                       f"(read {len(ex)} from {self.source.describe('train')})")
    return ex, keep

  def _eval_rows(self, name: str) -> list[tuple[str, ...]]:
    if ('rows', name) not in self._memo:
      self._memo['rows', name] = list(self._limit(self.source.rows(name), self.config.max_eval_examples))
    return self._memo['rows', name]

  def _eval(self, name: str) -> tuple[Examples, np.ndarray]:
    if ('examples', name) not in self._memo:
      ex = self._examples(name, lambda: iter(self._eval_rows(name)), self.config.max_eval_examples)
      self._memo['examples', name] = ex, self._kept(name, ex)
    return self._memo['examples', name]

  def _host_rows(self, global_rows: int) -> int:
    if global_rows % self.host_count:
      raise ValueError(f"batch size {global_rows} is not divisible by the {self.host_count} hosts")
    return global_rows // self.host_count

  # ---- the contract ------------------------------------------------------------------------------

  def train_batches(self, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Infinite; the batch of global step s is global rows [s·B, (s+1)·B), this host's slice of it."""
    ex, keep = self._train
    stream = self.train_stream()
    global_rows = self.config.batch_size
    rows = self._host_rows(global_rows)
    step = start_step
    while True:
      idx, row_of = stream.rows(step * global_rows + self.host_index * rows, rows)
      yield packing.pack_batch(ex.sides, keep[idx], row_of, rows, self.config.max_length)
      step += 1

  def train_stream(self) -> packing.RowStream:
    """The global row stream (e.g. ``rows_in_epoch(0) / batch_size`` = steps per epoch)."""
    ex, keep = self._train
    return packing.RowStream([s.lengths[keep] for s in ex.sides.values()], self.config.max_length,
                             self.config.seed, self.config.pack)

  def _eval_rows_layout(self, split: str, batch_size: int | None):
    ex, keep = self._eval(self.split_name(split))
    if self.config.pack:
      row_starts = packing.greedy_row_starts([s.lengths[keep] for s in ex.sides.values()],
                                             self.config.max_length)
    else:
      row_starts = np.arange(len(keep) + 1, dtype=np.int64)
    return ex, keep, row_starts, batch_size or self.config.eval_batch_size

  def eval_batches(self, split: str, batch_size: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Finite: every example that fits max_length exactly once, in file order; the last batch is
    padded with all-zero rows (segmentation 0, so it carries no weight). ``batch_size`` is global."""
    ex, keep, row_starts, global_rows = self._eval_rows_layout(split, batch_size)
    num_rows = len(row_starts) - 1
    rows = self._host_rows(global_rows)
    for first in range(0, num_rows, global_rows):
      lo = min(first + self.host_index * rows, num_rows)
      hi = min(lo + rows, num_rows)
      idx, row_of = packing.rows_of(row_starts, lo, hi)
      yield packing.pack_batch(ex.sides, keep[idx], row_of, rows, self.config.max_length)

  def eval_batch_word_counts(self, split: str, batch_size: int | None = None) -> list[int]:
    """Words in each GLOBAL batch of ``eval_batches`` (all hosts together), for per-word perplexity
    over a prefix of the batches (e.g. ``eval_steps``); they sum to ``word_count(split)``."""
    ex, keep, row_starts, global_rows = self._eval_rows_layout(split, batch_size)
    words = np.asarray(ex.words)[keep]
    bounds = row_starts[::global_rows].tolist() + [len(keep)]
    return [int(words[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

  def eval_texts(self, split: str) -> tuple[list[str], list[str]]:
    """(the first side's text, the last side's): translate (English sources, German references); lm
    (sentences, the same sentences). ALL sentences of the split (up to max_eval_examples),
    including those too long for eval_batches."""
    rows = self._eval_rows(self.split_name(split))
    return [r[0] for r in rows], [r[-1] for r in rows]

  def summary(self, split: str) -> dict:
    """What a split holds, for results records: where it came from, examples read and kept (those
    that fit max_length), tokens per side of the kept examples; for train also packed rows per epoch."""
    name = self.split_name(split)
    ex, keep = self._train if split == 'train' else self._eval(name)
    out = {'split': name, 'from': self.source.describe(name), 'examples': len(ex), 'kept': int(len(keep)),
           'dropped_too_long': int(len(ex) - len(keep)),
           'tokens': {side: int(r.lengths[keep].sum()) for side, r in ex.sides.items()},
           'words': int(np.asarray(ex.words)[keep].sum())}
    if split == 'train':
      out['rows_per_epoch'] = int(self.train_stream().rows_in_epoch(0))
    return out

  def word_count(self, split: str) -> int:
    """Words of the examples eval_batches yields: whitespace tokens of each raw target + 1 (EOS)."""
    ex, keep = self._eval(self.split_name(split))
    return int(np.asarray(ex.words)[keep].sum())


def _validate(task: str, cfg: ml_collections.ConfigDict, host_index: int, host_count: int) -> None:
  tasks.get(task)
  missing = [f for f in REQUIRED_FIELDS if f not in cfg]
  if missing:
    raise ValueError(f"data config lacks fields {missing} (see mqa_repro.data.pipeline.default_data_config)")
  if cfg.source not in datasets.names():
    raise ValueError(f"data.source must be one of {tuple(datasets.names())}, got {cfg.source!r}")
  if not 0 <= host_index < host_count:
    raise ValueError(f"host_index {host_index} is not in [0, host_count={host_count})")
  if cfg.batch_size < 1 or cfg.batch_size % host_count:
    raise ValueError(f"data.batch_size ({cfg.batch_size}) must be a positive multiple of the host "
                     f"count ({host_count}): each host takes batch_size / host_count rows")
  if cfg.max_length < 2:
    raise ValueError(f"data.max_length must be >= 2, got {cfg.max_length}")


def _load_tokenizer(task: str, cfg: ml_collections.ConfigDict, workdir, source, log: Log) -> Tokenizer:
  """`workdir`: an epath.Path, local or gs:// (mqa_repro/paths.py)."""
  from mqa_repro import paths
  target = workdir / 'vocab.model'
  if cfg.vocab_path:
    tok = Tokenizer.load(cfg.vocab_path)
  elif target.is_file():
    tok = Tokenizer.load(target)
    log(f"data: reusing the vocabulary {tok.model_path} ({tok.vocab_size} pieces)")
  else:
    log(f"data: training a {cfg.vocab_size}-piece SentencePiece vocabulary on up to "
        f"{cfg.spm_max_sentences} sentences of {source.describe('train')}")
    rows = source.rows('train')
    if cfg.max_train_examples:
      rows = itertools.islice(rows, cfg.max_train_examples)
    sentences = itertools.chain.from_iterable(rows)   # both languages: one shared vocabulary
    if paths.is_local(workdir):
      tok = train_sentencepiece(sentences, cfg.vocab_size, Path(os.fspath(target)),
                                max_sentences=cfg.spm_max_sentences, seed=cfg.seed)
    else:   # trained in a local temporary directory, then copied into the run directory
      import tempfile
      with tempfile.TemporaryDirectory(prefix='mqa_repro_vocab_') as tmp:
        tok = train_sentencepiece(sentences, cfg.vocab_size, Path(tmp) / 'vocab.model',
                                  max_sentences=cfg.spm_max_sentences, seed=cfg.seed)
      target.write_bytes(tok.model_proto)
      tok = Tokenizer(tok.model_proto, target)
    log(f"data: wrote {tok.model_path} ({tok.vocab_size} pieces)")
  if tok.vocab_size > cfg.vocab_size:
    raise ValueError(f"vocabulary {tok.model_path} has {tok.vocab_size} pieces but data.vocab_size is "
                     f"{cfg.vocab_size}: ids would overflow the model's embedding table")
  return tok


def load_task_data(task: str, data_config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                   host_index: int = 0, host_count: int = 1, log: Log = print) -> TaskData:
  """Resolve the source, load or train the vocabulary; splits are tokenized lazily on first use.

  `workdir` may be a gs:// URL (mqa_repro/paths.py): the vocabulary is kept there, the token caches
  (memory-mapped) locally, under ``$MQA_REPRO_CACHE/data_cache`` or ~/.cache/mqa_repro/data_cache
  (their keys hold the vocabulary's and the text's sha256, so runs may share them)."""
  from mqa_repro import paths
  _validate(task, data_config, host_index, host_count)
  workdir = paths.run_path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  source = _make_source(task, data_config, log)
  tokenizer = _load_tokenizer(task, data_config, workdir, source, log)
  cache_dir = (Path(os.fspath(workdir)) / 'data_cache' if paths.is_local(workdir)
               else paths.local_cache_dir('data_cache'))
  return TaskData(task=task, tokenizer=tokenizer, config=data_config, host_index=host_index,
                  host_count=host_count, source=source, cache_dir=cache_dir, log=log)
