"""Deterministic train/dev/test split by a seeded hash of each item's content.

Ranking by content rather than by position makes the split independent of the order in which packages
deliver their files (archive order, directory listings): the same items and seed always give the same
split, so two builds of the same packages write the same bytes.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, NamedTuple, Sequence


class Split(NamedTuple):
  train: list
  dev: list
  test: list
  removed_overlap: int  # train items dropped because they share a side with a dev/test item


def _rank(seed: int, key: str) -> bytes:
  return hashlib.blake2b(f'{seed}\x00{key}'.encode(), digest_size=12).digest()


def split_deterministic(items: Sequence, *, dev_size: int, test_size: int, seed: int,
                        key: Callable[[object], str] = str,
                        sides: Callable[[object], Iterable[str]] = lambda item: (str(item),),
                        eval_ok: Callable[[object], bool] = lambda item: True) -> Split:
  """Split by a seeded hash of each item's content, so the split ignores input order.

  Items are ranked by blake2b(seed, key(item)). dev takes the first `dev_size` eligible items (eval_ok, and no
  side already used by an earlier eval item), test the next `test_size`. Train is every other item in rank
  order (a deterministic shuffle), minus items sharing a side (`sides`) with an eval item, so eval sentences
  never leak into training with a different translation.
  """
  ranked = sorted(items, key=lambda it: _rank(seed, key(it)))
  eval_sides: set[str] = set()
  dev: list = []
  test: list = []
  rest: list = []
  for item in ranked:
    target = dev if len(dev) < dev_size else test if len(test) < test_size else None
    item_sides = tuple(sides(item))
    if target is not None and eval_ok(item) and not any(s in eval_sides for s in item_sides):
      target.append(item)
      eval_sides.update(item_sides)
    else:
      rest.append(item)
  if len(dev) < dev_size or len(test) < test_size:
    raise ValueError(f'only {len(dev) + len(test)} items are eligible for dev/test, '
                     f'but dev_size={dev_size} and test_size={test_size} were asked for')
  train = [it for it in rest if not any(s in eval_sides for s in sides(it))]
  return Split(train, dev, test, len(rest) - len(train))
