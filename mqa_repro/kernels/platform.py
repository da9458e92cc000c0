"""Where the Pallas kernels run: compiled by Pallas' Triton backend on a GPU, interpreted on the CPU
(tests, CI). A TPU would lower them through Mosaic TPU, for which they are not written (Triton
compiler parameters, power-of-2 blocks sized for GPU warps), so there they fail before tracing with
the config field that turns them off, not with a lowering error from deep inside Pallas."""

from __future__ import annotations

import jax


def interpret_default(kernel: str) -> bool:
  """True on the CPU (Pallas interpreter), False on a GPU; a clear error on any other backend."""
  backend = jax.default_backend()
  if backend not in ('cpu', 'gpu'):
    raise ValueError(f"{kernel}: the Pallas decode kernels are written for GPUs (Pallas' Triton "
                     f"backend) and do not run on {backend!r}; set --config.model.attention_impl=xla")
  return backend == 'cpu'
