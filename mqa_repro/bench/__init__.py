"""Speed benchmark (``mqa-repro bench``), split by concern:

  ceilings.py   the device's HBM bandwidth and bf16 matmul rate: probes, datasheet, ceilings
  timing.py     AOT compile, warm-up, median of repeats
  models.py     bf16 specs of the table rows, random parameters, the EOS-masked step, caches
  table2.py     the paper's Table 2 (training, encoder, greedy, beam-4) and its decode profiles
  sweeps.py     decoder cost vs target length, batch and kv heads
  kernels.py    decode attention alone: XLA vs Pallas tunings
  profiles.py   jax.profiler traces summed per kernel and per kind of kernel
  lm_decode.py  LM decoding at the paper's LM dims, beside the peers of peers.py (torch_lm.py)
  suite.py      run_benchmark: a run of the parts asked for

The formulas (bytes, FLOPs, roofline) are in mqa_repro/costs.py; provenance and the JSON records in
mqa_repro/provenance.py and mqa_repro/report/records.py; the command line in cli/bench.py. The names below are the ones callers
(reproduce, scripts, tests) import from ``mqa_repro.bench``.
"""

from __future__ import annotations

from mqa_repro.bench.ceilings import measure_hardware
from mqa_repro.bench.kernels import KERNEL_CASES, kernel_bench
from mqa_repro.bench.models import bench_spec
from mqa_repro.bench.profiles import HOST_EVENTS, summarize_trace, trace_kernel_totals
from mqa_repro.bench.suite import run_benchmark
from mqa_repro.bench.sweeps import SWEEPS
from mqa_repro.bench.table2 import PARTS, SETTINGS, VARIANTS, greedy_roofline
from mqa_repro.costs import decoder_step_cost, paper_ratio, roofline

__all__ = ['HOST_EVENTS', 'KERNEL_CASES', 'PARTS', 'SETTINGS', 'SWEEPS', 'VARIANTS', 'bench_spec',
           'decoder_step_cost', 'greedy_roofline', 'kernel_bench', 'measure_hardware',
           'paper_ratio', 'roofline', 'run_benchmark', 'summarize_trace',
           'trace_kernel_totals']
