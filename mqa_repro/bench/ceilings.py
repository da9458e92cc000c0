"""The device's ceilings: HBM bandwidth and the bf16 matmul rate, measured several ways and set beside
the vendor's datasheet.

A roofline fraction is only honest against a ceiling the device really has. So:
  * every probe runs on random data (constant data lets a matmul unit idle half its switching and
    run at a higher clock: ones inflate the rate);
  * copy buffers are far larger than the last-level cache (60 MB on an H200): 1 GiB each on an
    accelerator, several rotated, so no pass starts warm;
  * bandwidth is bytes read + written per second, probed as XLA's elementwise `x + 1`, XLA's copy of
    an operand, a copy into a donated buffer, ``jax.device_put`` to the same device, a Pallas (Triton)
    copy kernel in a few tunings and, when torch with CUDA imports, ``Tensor.copy_``; the matmul rate
    as XLA's and (with torch) cuBLAS's bf16 [M, M] @ [M, M];
  * the best probe of each kind is the measured figure, and every fraction in bench is stated against
    the HIGHER of it and the datasheet (the most demanding ceiling), `ceiling_basis` saying which.
On a CPU the same probes run on a few MiB, only to keep the code path alive in tests.

Shape letters: N elements of a copy buffer, M the matmul size.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from mqa_repro import costs
from mqa_repro.bench.timing import median_seconds

# (elements of a bf16 copy buffer N, buffers rotated, matmul size M, matmul pairs rotated)
ACCELERATOR = (1 << 29, 4, 8192, 4)   # 1 GiB buffers; M = 8192: 1.1 TFLOP per matmul
HOST = (1 << 20, 2, 256, 2)           # 2 MiB buffers on a CPU: the code path, not a ceiling
PALLAS_TUNINGS = ((4096, 4), (8192, 8), (16384, 8))   # (block elements, warps)


def torch_cuda():
  """torch, when it imports and sees a CUDA device; else None (the torch probes are extras)."""
  try:
    import torch
  except ImportError:
    return None
  return torch if torch.cuda.is_available() else None


def pallas_copy(x, block: int = 8192, num_warps: int = 8, interpret: bool | None = None):
  """x [N] -> a copy [N] by a Pallas kernel: program i moves elements [i·block, (i + 1)·block)."""
  import jax
  from jax.experimental import pallas as pl
  from jax.experimental.pallas import triton as pltriton

  def kernel(x_ref, o_ref):
    o_ref[...] = x_ref[...]

  n = x.shape[0]
  if n % block:
    raise ValueError(f'pallas_copy: {n} elements are not a multiple of the block {block}')
  spec = pl.BlockSpec((block,), lambda i: (i,))
  return pl.pallas_call(
      kernel, out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype), grid=(n // block,),
      in_specs=[spec], out_specs=spec,
      compiler_params=pltriton.CompilerParams(num_warps=num_warps, num_stages=1),
      interpret=jax.default_backend() == 'cpu' if interpret is None else interpret,
      name='bandwidth_copy')(x)


def _copy_seconds(copy_pass: Callable[[], list], srcs: list, repeats: int,
                  expect: Callable = lambda src: src) -> float:
  """Seconds per copy of a pass that copies every buffer of `srcs` once and returns the copies. The
  first pass is also the check that bytes really moved (a fresh buffer holding `expect(src)`), so a
  path that merely forwards its input cannot pass for infinite bandwidth."""
  for out, src in zip(copy_pass(), srcs):
    if (out.unsafe_buffer_pointer() == src.unsafe_buffer_pointer()
        or not bool((out == expect(src)).all())):
      raise RuntimeError('the probe returned its input or wrong values, not a copy')
  return median_seconds(copy_pass, repeats, 1) / len(srcs)


def _compiled_pass(fn: Callable, srcs: list) -> Callable[[], list]:
  import jax
  compiled = jax.jit(fn).lower(srcs[0]).compile()
  return lambda: jax.block_until_ready([compiled(s) for s in srcs])


def _donated_pass(srcs: list) -> Callable[[], list]:
  """Copies into donated destinations: the output aliases the destination, written in place."""
  import jax
  import jax.numpy as jnp
  from jax import lax
  copy = jax.jit(lambda src, dst: lax.dynamic_update_slice(dst, src, (0,)), donate_argnums=1)
  copy = copy.lower(srcs[0], srcs[0]).compile()
  dsts = [jnp.empty_like(s) for s in srcs]

  def one_pass():
    for i, s in enumerate(srcs):
      dsts[i] = copy(s, dsts[i])
    return jax.block_until_ready(list(dsts))
  return one_pass


def _device_put_pass(srcs: list) -> Callable[[], list]:
  import jax
  dev = next(iter(srcs[0].devices()))
  return lambda: jax.block_until_ready([jax.device_put(s, dev, may_alias=False) for s in srcs])


def _torch_probes(torch, n: int, k: int, m: int, pairs: int, repeats: int) -> list[dict[str, Any]]:
  def timed(fn):
    def call():
      fn()
      torch.cuda.synchronize()
    return median_seconds(call, repeats, 1)

  out = []
  src = [torch.randn(n, device='cuda', dtype=torch.bfloat16) for _ in range(k)]
  dst = [torch.empty_like(s) for s in src]
  sec = timed(lambda: [d.copy_(s) for d, s in zip(dst, src)]) / k
  out.append({'kind': 'copy', 'name': 'torch_copy', 'GBps': 2 * n * 2 / sec / 1e9,
              'method': 'Tensor.copy_ between two random bf16 CUDA tensors'})
  del src, dst
  a = [torch.randn(m, m, device='cuda', dtype=torch.bfloat16) for _ in range(2 * pairs)]
  sec = timed(lambda: [a[2 * i] @ a[2 * i + 1] for i in range(pairs)]) / pairs
  out.append({'kind': 'matmul', 'name': f'torch_matmul_{m}', 'TFLOPs': 2 * m ** 3 / sec / 1e12,
              'method': f'torch bf16 [{m}, {m}] @ [{m}, {m}] on random normal data (cuBLAS)'})
  del a
  torch.cuda.empty_cache()   # hand the memory back before the JAX work
  return out


def run_probes(n: int, k: int, m: int, pairs: int, repeats: int = 5,
               with_torch: bool = True, log: Callable[[str], None] = lambda s: None) -> list[dict]:
  """Every probe, each as {'kind': 'copy' | 'matmul', 'name', 'GBps' | 'TFLOPs', 'method'}, or with
  'error' when it cannot run here."""
  import jax
  import jax.numpy as jnp
  keys = jax.random.split(jax.random.PRNGKey(0), k + 2 * pairs)
  srcs = [jax.random.normal(keys[i], (n,), jnp.bfloat16) for i in range(k)]
  copy_bytes = 2 * n * 2    # read + write, bf16
  add_one = lambda x: x + jnp.bfloat16(1)   # noqa: E731
  copies: list[tuple[str, str, Callable[[], Callable[[], list]]]] = [
      ('xla_add_one', 'XLA elementwise x + 1 (one fusion reads x and writes the result)',
       lambda: _compiled_pass(add_one, srcs)),
      ('xla_copy', 'XLA copy of a jit operand into its fresh output',
       lambda: _compiled_pass(jnp.copy, srcs)),
      ('xla_copy_donated', 'XLA copy into a donated destination (the output aliases it)',
       lambda: _donated_pass(srcs)),
      ('device_put', 'jax.device_put(x, its own device, may_alias=False)',
       lambda: _device_put_pass(srcs))]
  if jax.devices()[0].platform == 'gpu':
    for block, warps in PALLAS_TUNINGS:
      copies.append((f'pallas_copy_b{block}_w{warps}',
                     f'Pallas (Triton) copy, {block} elements and {warps} warps per program',
                     lambda b=block, w=warps: _compiled_pass(
                         functools.partial(pallas_copy, block=b, num_warps=w), srcs)))
  probes = []
  for name, method, make_pass in copies:
    try:
      sec = _copy_seconds(make_pass(), srcs, repeats, add_one if name == 'xla_add_one' else lambda x: x)
      probes.append({'kind': 'copy', 'name': name, 'GBps': copy_bytes / sec / 1e9, 'method': method})
    except Exception as e:  # a path this backend or jax version lacks: record it, try the next
      probes.append({'kind': 'copy', 'name': name, 'method': method,
                     'error': f'{type(e).__name__}: {str(e)[:200]}'})
  del srcs
  mats = [jax.random.normal(keys[k + i], (m, m), jnp.bfloat16) for i in range(2 * pairs)]
  matmul = jax.jit(lambda a, b: a @ b).lower(mats[0], mats[1]).compile()
  sec = median_seconds(lambda: jax.block_until_ready(
      [matmul(mats[2 * i], mats[2 * i + 1]) for i in range(pairs)]), repeats, 1) / pairs
  probes.append({'kind': 'matmul', 'name': f'xla_matmul_{m}', 'TFLOPs': 2 * m ** 3 / sec / 1e12,
                 'method': f'XLA bf16 [{m}, {m}] @ [{m}, {m}] on random normal data'})
  del mats
  torch = torch_cuda() if with_torch and jax.devices()[0].platform == 'gpu' else None
  if torch is not None:
    try:
      probes += _torch_probes(torch, n, k, m, pairs, repeats)
    except Exception as e:
      probes.append({'kind': 'copy', 'name': 'torch', 'error': f'{type(e).__name__}: {str(e)[:200]}'})
  for p in probes:
    value = f"{p['GBps']:.0f} GB/s" if 'GBps' in p else (
        f"{p['TFLOPs']:.1f} TFLOP/s" if 'TFLOPs' in p else p['error'][:80])
    log(f"bench: probe {p['kind']:6s} {p['name']:24s} {value}")
  return probes


def choose_ceilings(probes: list[dict], sheet: dict | None) -> dict[str, Any]:
  """The best probe of each kind (the measured figures) and the ceilings: the higher of measured and
  datasheet, each with its basis ('datasheet <name>' or 'measured <probe>')."""
  out: dict[str, Any] = {}
  for kind, unit, sheet_key, name in (('copy', 'GBps', 'hbm_GBps', 'bandwidth'),
                                      ('matmul', 'TFLOPs', 'bf16_TFLOPs', 'matmul')):
    ok = [p for p in probes if p['kind'] == kind and p.get(unit)]
    if not ok:
      raise RuntimeError(f'no {kind} probe ran: {[p.get("error") for p in probes if p["kind"] == kind]}')
    best = max(ok, key=lambda p: p[unit])
    out[f'{kind}_{unit}'], out[f'{kind}_probe'] = best[unit], best['name']
    if sheet and sheet[sheet_key] >= best[unit]:
      out[f'ceiling_{unit}'], basis = float(sheet[sheet_key]), f"datasheet {sheet['name']}"
    else:
      out[f'ceiling_{unit}'], basis = best[unit], f"measured {best['name']}"
    out.setdefault('ceiling_basis', {})[name] = basis
    if sheet:
      out[f'{kind}_fraction_of_datasheet'] = best[unit] / sheet[sheet_key]
  return out


def measure_hardware(size: str = 'paper', with_torch: bool = True,
                     log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
  """The hardware record every bench JSON carries: device, probes, measured best, datasheet and the
  ceilings the roofline divides by (costs.ceilings). Probe sizes follow the platform (a CPU gets the
  HOST sizes whatever `size`); `size` 'tiny' shrinks them on an accelerator too."""
  import jax
  dev = jax.devices()[0]
  n, k, m, pairs = HOST if dev.platform == 'cpu' or size == 'tiny' else ACCELERATOR
  probes = run_probes(n, k, m, pairs, with_torch=with_torch, log=log)
  sheet = costs.datasheet(dev.device_kind)
  hw = {'device': dev.device_kind, 'platform': dev.platform, 'device_count': jax.device_count(),
        **choose_ceilings(probes, sheet), 'datasheet': sheet,
        'copy_buffer_bytes': n * 2, 'copy_buffers': k, 'matmul_size': m, 'probes': probes}
  log(f"bench: {hw['device']}: best copy {hw['copy_GBps']:.0f} GB/s ({hw['copy_probe']}), bf16 matmul "
      f"{hw['matmul_TFLOPs']:.1f} TFLOP/s ({hw['matmul_probe']}); roofline ceilings "
      f"{hw['ceiling_GBps']:.0f} GB/s ({hw['ceiling_basis']['bandwidth']}), "
      f"{hw['ceiling_TFLOPs']:.1f} TFLOP/s ({hw['ceiling_basis']['matmul']})")
  return hw
