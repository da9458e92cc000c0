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


def warmup_after(first_call_seconds: float) -> int:
  """Warm-up runs after a checked first run: a long first run has warmed everything already (its
  allocations, CUDA graphs); a short one may still carry first-call costs of the same order."""
  return 1 if first_call_seconds < 2.0 else 0


def out_of_memory(e: BaseException) -> bool:
  """An allocation failure (XLA's RESOURCE_EXHAUSTED, torch's CUDA OOM): skip the point, go on."""
  text = str(e)
  return 'RESOURCE_EXHAUSTED' in text or 'out of memory' in text.lower()


class Budget:
  """A run's time budget: no new piece of work starts once it would end past `seconds` (None: no
  limit), each piece's length guessed from the last one of its kind. A run cut this way exits cleanly
  with what it measured saved, so rerunning the same command (with --resume) continues it."""

  def __init__(self, seconds: float | None):
    self.seconds, self.start, self.took = seconds, time.perf_counter(), {}
    self.stopped: str | None = None

  def allows(self, kind: Any) -> bool:
    elapsed = time.perf_counter() - self.start
    if not self.seconds or elapsed + self.took.get(kind, 0.0) <= self.seconds:
      return True
    self.stopped = (f'time budget {self.seconds:.0f} s reached after {elapsed:.0f} s; rerun the same '
                    f'command with --resume to continue')
    return False

  def record(self, kind: Any, since: float) -> None:
    """The piece of `kind` that started at perf_counter() `since` has ended."""
    self.took[kind] = time.perf_counter() - since
