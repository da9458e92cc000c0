"""What every table and plot of the report shares: markdown and CSV writers, number formats, the one
colour per attention variant, pyplot."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable, Sequence


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  return lines + ['| ' + ' | '.join(r) + ' |' for r in rows]


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
  with open(path, 'w', newline='', encoding='utf-8') as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows([['' if v is None else v for v in r] for r in rows])
  return path


def fmt(x: Any, digits: int = 2) -> str:
  """A number with `digits` decimals, an int as it is, '–' for none or non-finite."""
  if x is None or (isinstance(x, float) and not math.isfinite(x)):
    return '–'
  if isinstance(x, int):
    return str(x)
  return f'{x:.{digits}f}'


def fmt_sig(x: float | None, sig: int = 3) -> str:
  """Three significant digits: 0.0123, 1.23, 46.0, 203 (µs span five orders of magnitude)."""
  if x is None or not math.isfinite(x):
    return '–'
  if x == 0:
    return '0'
  digits = max(sig - 1 - int(math.floor(math.log10(abs(x)))), 0)
  return f'{x:.{digits}f}'


def params_text(n: int | None) -> str:
  if n is None:
    return '–'
  return f'{n / 1e6:.0f}M' if n >= 1e7 else f'{n / 1e6:.2f}M'


def distinct(values: Iterable[Any]) -> str:
  """The distinct values, in first-seen order, joined by ' / ' (one value when all runs agree)."""
  out: list[str] = []
  for v in values:
    if str(v) not in out:
      out.append(str(v))
  return ' / '.join(out) if out else '–'


# One colour per attention variant, the same in every plot of every report (matplotlib's tab10 order,
# indexed by the variant's place in config.ROWS['translate']): multi-head blue, multi-query red, ...
PALETTE = ('#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
           '#bcbd22', '#17becf')
UNKNOWN_COLOUR = '#333333'
# What a kv-heads sweep or an uptraining report calls a variant: 'g<n>' is the h = 8 row with n kv heads.
KV_HEADS_ROW = {1: 'mqa', 2: 'gqa2', 4: 'gqa4', 8: 'mha'}


def colour(variant: str) -> str:
  """The colour of attention variant `variant` (a row name of config.ROWS, or 'g<n>' for n kv heads
  at h = 8: g1 is multi-query's colour, g8 multi-head's); dark grey for anything else."""
  from mqa_repro import config as cfg
  if variant.startswith('g') and variant[1:].isdigit():
    variant = KV_HEADS_ROW.get(int(variant[1:]), variant)
  order = list(cfg.ROWS['translate'])
  return PALETTE[order.index(variant) % len(PALETTE)] if variant in order else UNKNOWN_COLOUR


def variant_label(variant: str) -> str:
  """The table's label of a variant ('multi-query'), 'g2 (grouped-query g=2)' for a kv-heads point."""
  from mqa_repro import config as cfg
  rows = cfg.ROWS['translate']
  if variant.startswith('g') and variant[1:].isdigit():
    row = KV_HEADS_ROW.get(int(variant[1:]))
    return f'{variant} ({rows[row].label})' if row else variant
  return rows[variant].label if variant in rows else variant


def pyplot():
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt


def save_figure(fig: Any, path: Path, **savefig: Any) -> Path:
  """Lay out, write (PNG, 110 dpi) and close a figure; returns `path`."""
  fig.tight_layout()
  fig.savefig(path, dpi=110, **savefig)
  pyplot().close(fig)
  return path
