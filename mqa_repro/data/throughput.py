"""How fast the input pipeline feeds training: non-pad tokens per second out of ``train_batches``."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def measure(task_data, steps: int, start_step: int = 0) -> dict[str, Any]:
  """Time `steps` training batches of a TaskData after the first (which packs the first epoch):
  tokens per second (non-pad, inputs + targets), target tokens per second, steps per second and
  the fill (non-pad fraction of the batch arrays)."""
  t0 = time.perf_counter()
  stream = task_data.train_stream()  # tokenization (or cache load) happens here
  setup_s = time.perf_counter() - t0
  it = task_data.train_batches(start_step=start_step)
  t1 = time.perf_counter()
  next(it)
  first_batch_s = time.perf_counter() - t1
  tokens = target_tokens = slots = 0
  t2 = time.perf_counter()
  for _ in range(steps):
    batch = next(it)
    for key in ('inputs', 'targets'):
      if key in batch:
        n = int(np.count_nonzero(batch[f'{key}_segmentation']))
        tokens += n
        slots += batch[key].size
        target_tokens += n if key == 'targets' else 0
  elapsed = time.perf_counter() - t2
  d = task_data.config
  return {
      'task': task_data.task, 'source': d.source, 'steps': steps, 'batch_size': d.batch_size,
      'max_length': d.max_length, 'pack': bool(d.pack), 'vocab_size': task_data.tokenizer.vocab_size,
      'train_examples_kept': int(stream.num_examples),
      'steps_per_epoch': stream.rows_in_epoch(0) / d.batch_size,
      'tokens_per_s': tokens / elapsed,
      'target_tokens_per_s': target_tokens / elapsed,
      'steps_per_s': steps / elapsed,
      'fill': tokens / max(slots, 1),
      'setup_s': setup_s, 'first_batch_s': first_batch_s,
  }
