"""What every table and plot of the report shares: markdown and CSV writers, number formats, pyplot."""

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


def pyplot():
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt
