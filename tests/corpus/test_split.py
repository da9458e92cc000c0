"""The deterministic train/dev/test split (mqa_repro.corpus.split)."""

from __future__ import annotations

import pytest

from mqa_repro.corpus.split import split_deterministic
from mqa_repro.corpus.text import Pair


def _pairs(n: int) -> list[Pair]:
  return [Pair(f'english sentence {i}', f'deutscher Satz {i}', 'noisy' if i % 3 == 0 else 'clean')
          for i in range(n)]


def test_split_deterministic() -> None:
  items = _pairs(300)
  kwargs = dict(dev_size=20, test_size=30, key=lambda p: p.en + '\t' + p.de, sides=lambda p: (p.en, p.de),
                eval_ok=lambda p: p.src == 'clean')
  a = split_deterministic(items, seed=0, **kwargs)
  b = split_deterministic(list(reversed(items)), seed=0, **kwargs)  # input order must not matter
  c = split_deterministic(items, seed=1, **kwargs)
  assert a == b
  assert a.dev != c.dev
  assert (len(a.dev), len(a.test), len(a.train)) == (20, 30, 250)
  assert not (set(a.train) & set(a.dev) or set(a.train) & set(a.test) or set(a.dev) & set(a.test))
  assert set(a.train) | set(a.dev) | set(a.test) == set(items)
  assert all(p.src == 'clean' for p in a.dev + a.test)


def test_split_removes_train_items_sharing_a_side_with_eval() -> None:
  items = _pairs(100) + [Pair(f'english sentence {i}', f'andere Übersetzung {i}', 'clean') for i in range(100)]
  parts = split_deterministic(items, dev_size=10, test_size=10, seed=0, key=lambda p: p.en + '\t' + p.de,
                              sides=lambda p: (p.en, p.de))
  eval_en = {p.en for p in parts.dev + parts.test}
  assert len(eval_en) == 20  # no English sentence twice in dev/test
  assert not eval_en & {p.en for p in parts.train}
  assert parts.removed_overlap == 20
  assert len(parts.train) + 20 + parts.removed_overlap == len(items)


def test_split_raises_when_too_few_eval_items() -> None:
  with pytest.raises(ValueError, match='eligible for dev/test'):
    split_deterministic(_pairs(10), dev_size=5, test_size=5, seed=0, eval_ok=lambda p: p.src == 'clean')
