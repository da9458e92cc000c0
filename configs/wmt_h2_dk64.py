"""Table 1 (WMT14 EN-DE) row: multi-head.

`get_config(size)` with size 'paper' (default), 'gpu' (about 8 minutes on one H100) or 'tiny' (CPU twin);
on the command line: --config configs/wmt_h2_dk64.py:tiny
"""

from mqa_repro.config import row_config


def get_config(size: str = 'paper'):
  return row_config('translate', 'h2_dk64', size)
