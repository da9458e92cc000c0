"""Packing examples into fixed-length rows, and the deterministic global stream of packed rows.

Shapes (R rows, L = max_length):
  ``<side>``               int32 [R, L]  token ids, PAD_ID (0) after the last example of the row
  ``<side>_segmentation``  int32 [R, L]  1, 2, 3 ... per example within the row, 0 = padding
  ``<side>_position``      int32 [R, L]  0 .. len-1 within each example, 0 on padding
where ``<side>`` is ``inputs`` and ``targets`` for translation and only ``targets`` for LM. A token may
attend to another only when their segment ids are equal and non-zero, which keeps packed examples
from seeing each other; positions restart at 0 so learned position embeddings see unpacked positions.

Translation packs both sides together (as t5 / flax do): example k of a row puts its inputs into the
inputs row and its targets into the targets row, with the same segment id; a new row starts when either
side would overflow.

Determinism: epoch e of the training stream is the kept examples shuffled by a generator seeded with
(seed, e) and packed greedily in that order; global row r is row r of epochs 0, 1, 2 ... concatenated.
A batch is a range of global rows, so a run resumed at any step sees exactly the rows an uninterrupted
run would have seen, on any number of hosts.
"""

from __future__ import annotations

import collections
from typing import Mapping, Sequence

import numpy as np

from mqa_repro.data.examples import Ragged


def greedy_row_starts(lengths: Sequence[np.ndarray], max_length: int) -> np.ndarray:
  """Next-fit packing of examples, in the given order, into rows of ``max_length`` tokens per side.

  lengths: one int array [n] per side. Returns row_starts [rows + 1]: row j holds examples
  row_starts[j] .. row_starts[j+1]-1. Every example must fit a row on its own (filter first).
  Next-fit keeps the order (so the stream is a pure function of the shuffle) and still fills rows well
  with sentence-length examples (``mqa-repro data bench`` reports the fill).
  """
  n = len(lengths[0])
  if any(int(np.max(side, initial=0)) > max_length for side in lengths):
    raise ValueError(f"an example is longer than max_length={max_length}; filter examples first")
  starts = [0]
  if len(lengths) == 1:
    fill = 0
    for i, a in enumerate(lengths[0].tolist()):
      if fill + a > max_length:
        starts.append(i)
        fill = 0
      fill += a
  else:
    fill_a = fill_b = 0
    for i, (a, b) in enumerate(zip(lengths[0].tolist(), lengths[1].tolist())):
      if fill_a + a > max_length or fill_b + b > max_length:
        starts.append(i)
        fill_a = fill_b = 0
      fill_a += a
      fill_b += b
  if n:
    starts.append(n)
  return np.asarray(starts, np.int64)


def pack_batch(sides: Mapping[str, Ragged], example_ids: np.ndarray, row_of: np.ndarray, num_rows: int,
               max_length: int) -> dict[str, np.ndarray]:
  """Build a batch of ``num_rows`` rows (see the module docstring for keys and shapes).

  example_ids [n]: examples to place, grouped by row in row order; row_of [n]: the (non-decreasing)
  row of each. Examples of a row are laid out left to right; rows with no examples stay all-zero, which
  is how the last eval batch is padded. Fully vectorised: one gather and one scatter per side.
  """
  example_ids = np.asarray(example_ids, np.int64)
  row_of = np.asarray(row_of, np.int64)
  n = len(example_ids)
  # Segment id = 1 + index of the example within its row.
  row_first = np.searchsorted(row_of, row_of, side='left')
  segment = (np.arange(n) - row_first + 1).astype(np.int32)
  batch = {}
  for name, seqs in sides.items():
    lengths = seqs.lengths[example_ids] if n else np.zeros(0, np.int64)
    ends = np.cumsum(lengths)
    begins = ends - lengths                        # start of each example in the concatenation
    column = begins - begins[row_first]            # start of each example within its row
    if n and int((column + lengths).max()) > max_length:
      raise ValueError(f"row overflow in '{name}': a row holds more than max_length={max_length} tokens")
    total = int(ends[-1]) if n else 0
    which = np.repeat(np.arange(n), lengths)       # example of each placed token
    within = np.arange(total) - begins[which]      # position of each token within its example
    src = seqs.offsets[example_ids][which] + within
    dst = row_of[which] * max_length + column[which] + within
    tokens = np.zeros((num_rows, max_length), np.int32)
    seg = np.zeros((num_rows, max_length), np.int32)
    pos = np.zeros((num_rows, max_length), np.int32)
    tokens.reshape(-1)[dst] = seqs.tokens[src]
    seg.reshape(-1)[dst] = segment[which]
    pos.reshape(-1)[dst] = within
    batch[name] = tokens
    batch[f'{name}_segmentation'] = seg
    batch[f'{name}_position'] = pos
  return batch


def rows_of(row_starts: np.ndarray, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
  """(example indices, 0-based row within [first, last)) for rows first .. last-1 of one packing."""
  lo, hi = int(row_starts[first]), int(row_starts[last])
  counts = np.diff(row_starts[first:last + 1])
  return np.arange(lo, hi), np.repeat(np.arange(last - first), counts)


class RowStream:
  """The global stream of packed training rows over epochs (see the module docstring).

  lengths: per side, the lengths of the N examples in the stream (example i = i-th kept example).
  ``pack=False`` puts one example per row (rows per epoch = N).
  Packing an epoch is an O(N) Python loop; the two most recent epochs are memoised, and the row count
  of every epoch seen is kept so resuming at a late step only re-packs the epochs before it once.
  """

  def __init__(self, lengths: Sequence[np.ndarray], max_length: int, seed: int, pack: bool = True):
    self.lengths = [np.asarray(l) for l in lengths]
    self.num_examples = len(self.lengths[0])
    if self.num_examples == 0:
      raise ValueError("no training examples to stream (all filtered out or the split is empty)")
    self.max_length, self.seed, self.pack = max_length, seed, pack
    self._epochs: collections.OrderedDict[int, tuple[np.ndarray, np.ndarray]] = collections.OrderedDict()
    self._row_counts: list[int] = []   # rows of epochs 0, 1, ... computed so far

  def epoch(self, e: int) -> tuple[np.ndarray, np.ndarray]:
    """(order [N] example indices, row_starts [rows + 1] into ``order``) of epoch ``e``."""
    if e in self._epochs:
      self._epochs.move_to_end(e)
      return self._epochs[e]
    rng = np.random.default_rng([self.seed, e])
    order = rng.permutation(self.num_examples)
    if self.pack:
      row_starts = greedy_row_starts([l[order] for l in self.lengths], self.max_length)
    else:
      row_starts = np.arange(self.num_examples + 1, dtype=np.int64)
    self._epochs[e] = (order, row_starts)
    if len(self._epochs) > 2:
      self._epochs.popitem(last=False)
    return order, row_starts

  def rows_in_epoch(self, e: int) -> int:
    while len(self._row_counts) <= e:
      self._row_counts.append(len(self.epoch(len(self._row_counts))[1]) - 1)
    return self._row_counts[e]

  def locate(self, row: int) -> tuple[int, int]:
    """Global row index -> (epoch, row within that epoch)."""
    e = 0
    while row >= self.rows_in_epoch(e):
      row -= self.rows_in_epoch(e)
      e += 1
    return e, row

  def rows(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(example indices, row 0..count-1 of each) for global rows first .. first+count-1."""
    ids, row_of, done = [], [], 0
    e, r = self.locate(first)
    while done < count:
      order, row_starts = self.epoch(e)
      take = min(count - done, self.rows_in_epoch(e) - r)
      idx, rows = rows_of(row_starts, r, r + take)
      ids.append(order[idx])
      row_of.append(rows + done)
      done += take
      e, r = e + 1, 0
    return np.concatenate(ids), np.concatenate(row_of)
