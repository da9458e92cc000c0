"""How everything in bench is timed: ahead-of-time compile, warm-up, ``block_until_ready``, the
median of repeats (maxtext's microbenchmark method)."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def median_time(fn: Callable, *args, repeats: int = 5, warmup: int = 2) -> float:
  """Median wall seconds of an ahead-of-time compiled call, after warm-up, synchronised on the result."""
  import jax
  compiled = jax.jit(fn).lower(*args).compile()
  return median_seconds(lambda: jax.block_until_ready(compiled(*args)), repeats, warmup)


def median_seconds(call: Callable[[], Any], repeats: int = 5, warmup: int = 2) -> float:
  """Median wall seconds of `call`, which must return only once the device is done."""
  for _ in range(warmup):
    call()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def out_of_memory(e: BaseException) -> bool:
  """An allocation failure (XLA's RESOURCE_EXHAUSTED, torch's CUDA OOM): skip the point, go on."""
  text = str(e)
  return 'RESOURCE_EXHAUSTED' in text or 'out of memory' in text.lower()
