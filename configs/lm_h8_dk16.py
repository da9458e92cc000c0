"""Table 3 (Billion-Word LM) row: multi-head.

`get_config(size)` with size 'paper' (default), 'gpu' (about 8 minutes on one H100) or 'tiny' (CPU twin);
on the command line: --config configs/lm_h8_dk16.py:tiny
"""

from mqa_repro.config import row_config


def get_config(size: str = 'paper'):
  return row_config('lm', 'h8_dk16', size)
