"""Tokenized examples of one split, stored as flat arrays, and their on-disk cache.

An example is a token sequence ending with EOS (no BOS: the model shifts targets right itself).
Translation examples have ``inputs`` (English) and ``targets`` (German); LM examples only ``targets``.
Sequences are stored ragged: one flat int32 token array plus int64 offsets, so millions of sentences
cost 4 bytes per token, load with ``mmap`` from the cache, and a batch gathers them with numpy indexing.

Each example also carries its WORD count, for per-word perplexity (the paper's Table 3): the number of
whitespace-separated tokens of the raw target sentence plus one for the end of sentence (lm1b is
distributed tokenized, so whitespace tokens are its words; counting the end of sentence as a word is
the benchmark's convention, Chelba et al. 2013).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from mqa_repro.data.tokenizer import EOS_ID, Tokenizer

CACHE_FORMAT = 1          # bump when the stored layout changes
_ENCODE_CHUNK = 16384     # sentences per SentencePiece batch call


@dataclasses.dataclass(frozen=True)
class Ragged:
  """Variable-length int32 sequences: ``tokens`` [total], ``offsets`` [n + 1] (int64, offsets[0] = 0)."""
  tokens: np.ndarray
  offsets: np.ndarray

  def __len__(self) -> int:
    return len(self.offsets) - 1

  @property
  def lengths(self) -> np.ndarray:
    return np.diff(self.offsets)

  def __getitem__(self, i: int) -> np.ndarray:
    return self.tokens[self.offsets[i]:self.offsets[i + 1]]

  @classmethod
  def from_lists(cls, seqs: Sequence[Sequence[int]], append_eos: bool = False) -> 'Ragged':
    extra = 1 if append_eos else 0
    lengths = np.fromiter((len(s) + extra for s in seqs), np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.empty(int(offsets[-1]), np.int32)
    if append_eos:
      is_eos = np.zeros(len(tokens), bool)
      is_eos[offsets[1:] - 1] = True
      tokens[is_eos] = EOS_ID
      tokens[~is_eos] = np.fromiter(itertools.chain.from_iterable(seqs), np.int32,
                                    count=len(tokens) - len(seqs))
    else:
      tokens[:] = np.fromiter(itertools.chain.from_iterable(seqs), np.int32, count=len(tokens))
    return cls(tokens, offsets)

  @classmethod
  def concatenate(cls, parts: Sequence['Ragged']) -> 'Ragged':
    if not parts:
      return cls(np.zeros(0, np.int32), np.zeros(1, np.int64))
    tokens = np.concatenate([p.tokens for p in parts])
    shifts = np.cumsum([0] + [len(p.tokens) for p in parts[:-1]])
    offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in zip(parts, shifts)]).astype(np.int64)
    return cls(tokens, offsets)


@dataclasses.dataclass(frozen=True)
class Examples:
  """All examples of one split. ``inputs`` is None for LM. ``words`` [n]: word count of each target."""
  targets: Ragged
  words: np.ndarray
  inputs: Ragged | None = None

  def __len__(self) -> int:
    return len(self.targets)

  @property
  def sides(self) -> dict[str, Ragged]:
    """Batch key prefix -> sequences, in the order the batch dict lists them."""
    return {'targets': self.targets} if self.inputs is None else {'inputs': self.inputs,
                                                                  'targets': self.targets}

  def fits(self, max_length: int) -> np.ndarray:
    """bool [n]: every side of the example (EOS included) fits a row of ``max_length`` tokens."""
    ok = self.targets.lengths <= max_length
    if self.inputs is not None:
      ok &= self.inputs.lengths <= max_length
    return ok


def word_count(sentence: str) -> int:
  """Words of one sentence for per-word perplexity: whitespace tokens + 1 end of sentence."""
  return len(sentence.split()) + 1


def tokenize(rows: Iterable[tuple[str, ...]], tokenizer: Tokenizer) -> Examples:
  """Rows of ``(source, target)`` (translation) or ``(sentence,)`` (LM) -> Examples with EOS appended."""
  parts: list[list[Ragged]] = []
  words: list[np.ndarray] = []
  width = None
  rows = iter(rows)
  while chunk := list(itertools.islice(rows, _ENCODE_CHUNK)):
    width = width or len(chunk[0])
    columns = list(zip(*chunk))
    parts.append([Ragged.from_lists(tokenizer.encode_batch(col), append_eos=True) for col in columns])
    words.append(np.fromiter((word_count(t) for t in columns[-1]), np.int64, count=len(chunk)))
  if width is None:  # empty split
    empty = Ragged.concatenate([])
    return Examples(targets=empty, words=np.zeros(0, np.int64))
  sides = [Ragged.concatenate([p[k] for p in parts]) for k in range(width)]
  return Examples(targets=sides[-1], words=np.concatenate(words),
                  inputs=sides[0] if width == 2 else None)


# --------------------------------------------------------------------------------------------------
# Cache: one directory of .npy files per (vocab, data, options) key, written atomically.


def save(examples: Examples, directory: Path, meta: dict) -> None:
  directory = Path(directory)
  directory.parent.mkdir(parents=True, exist_ok=True)
  tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=directory.name + '.tmp'))
  arrays = {'targets': examples.targets.tokens, 'targets_offsets': examples.targets.offsets,
            'words': examples.words}
  if examples.inputs is not None:
    arrays |= {'inputs': examples.inputs.tokens, 'inputs_offsets': examples.inputs.offsets}
  for name, a in arrays.items():
    np.save(tmp / f'{name}.npy', a)
  (tmp / 'meta.json').write_text(json.dumps(meta | {'format': CACHE_FORMAT, 'num_examples': len(examples)},
                                            indent=1))
  try:
    os.rename(tmp, directory)
  except OSError:  # another process (host) wrote the same key first: theirs is identical
    shutil.rmtree(tmp, ignore_errors=True)


def load(directory: Path) -> Examples | None:
  """The cached examples, memory-mapped, or None when absent / from another cache format."""
  directory = Path(directory)
  try:
    meta = json.loads((directory / 'meta.json').read_text())
  except (OSError, ValueError):
    return None
  if meta.get('format') != CACHE_FORMAT:
    return None
  arr = lambda name: np.load(directory / f'{name}.npy', mmap_mode='r')
  inputs = Ragged(arr('inputs'), arr('inputs_offsets')) if (directory / 'inputs.npy').exists() else None
  return Examples(targets=Ragged(arr('targets'), arr('targets_offsets')), words=arr('words'), inputs=inputs)


def cached(directory: Path | None, build: Callable[[], Examples], meta: dict,
           log: Callable[[str], None]) -> Examples:
  """Load ``directory`` if it holds a cache, else ``build()`` and save it there (None = no caching)."""
  if directory is not None and (hit := load(directory)) is not None:
    log(f"data: loaded {len(hit)} tokenized examples from {directory}")
    return hit
  examples = build()
  if directory is not None:
    save(examples, directory, meta)
  return examples
