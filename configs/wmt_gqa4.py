"""Table 1 (WMT14 EN-DE) row: grouped-query g=4 (not in the paper: grouped-query, Ainslie et al. 2023).

`get_config(size)` with size 'paper' (default), 'gpu' (about 8 minutes on one H100) or 'tiny' (CPU twin);
on the command line: --config configs/wmt_gqa4.py:tiny
"""

from mqa_repro.config import row_config


def get_config(size: str = 'paper'):
  return row_config('translate', 'gqa4', size)
