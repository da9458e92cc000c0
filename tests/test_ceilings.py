"""bench.ceilings: the best probe wins, the ceiling is the higher of it and the datasheet, and the
roofline divides by that ceiling; the copy probes really copy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mqa_repro import costs
from mqa_repro.bench import ceilings

PROBES = [{'kind': 'copy', 'name': 'xla_add_one', 'GBps': 2800.0},
          {'kind': 'copy', 'name': 'torch_copy', 'GBps': 4280.0},
          {'kind': 'copy', 'name': 'device_put', 'error': 'NotImplementedError'},
          {'kind': 'matmul', 'name': 'xla_matmul_8192', 'TFLOPs': 700.0},
          {'kind': 'matmul', 'name': 'torch_matmul_8192', 'TFLOPs': 760.0}]


def test_best_probe_is_measured_and_the_datasheet_is_the_ceiling_when_higher():
  hw = ceilings.choose_ceilings(PROBES, costs.datasheet('NVIDIA H200'))
  assert (hw['copy_GBps'], hw['copy_probe']) == (4280.0, 'torch_copy')
  assert (hw['matmul_TFLOPs'], hw['matmul_probe']) == (760.0, 'torch_matmul_8192')
  assert (hw['ceiling_GBps'], hw['ceiling_TFLOPs']) == (4800.0, 989.0)
  assert hw['ceiling_basis'] == {'bandwidth': 'datasheet H200', 'matmul': 'datasheet H200'}
  assert hw['copy_fraction_of_datasheet'] == pytest.approx(4280 / 4800)


def test_a_measurement_above_the_datasheet_becomes_the_ceiling():
  sheet = {'name': 'slow sheet', 'hbm_GBps': 4000, 'bf16_TFLOPs': 989}
  hw = ceilings.choose_ceilings(PROBES, sheet)
  assert hw['ceiling_GBps'] == 4280.0 and hw['ceiling_basis']['bandwidth'] == 'measured torch_copy'
  assert hw['ceiling_basis']['matmul'] == 'datasheet slow sheet'
  none = ceilings.choose_ceilings(PROBES, None)   # no datasheet (a CPU): the measurements
  assert none['ceiling_basis'] == {'bandwidth': 'measured torch_copy', 'matmul': 'measured torch_matmul_8192'}
  with pytest.raises(RuntimeError, match='no copy probe'):
    ceilings.choose_ceilings([p for p in PROBES if p['kind'] == 'matmul'], None)


def test_roofline_divides_by_the_ceiling_not_the_measurement():
  hw = {**ceilings.choose_ceilings(PROBES, costs.datasheet('NVIDIA H200'))}
  cost = {'bytes': 4.8e9, 'weight_bytes': 4.8e9, 'self_kv_bytes': 0, 'cross_kv_bytes': 0,
          'flops': 0.0, 'dense_flops': 0.0, 'attention_flops': 0.0}
  assert math.isclose(costs.roofline(cost, hw)['seconds'], 1e-3)          # 4.8 GB at 4800 GB/s
  old = {'copy_GBps': 2400.0, 'matmul_TFLOPs': 700.0}                       # a record without ceilings
  assert math.isclose(costs.roofline(cost, old)['seconds'], 2e-3)


def test_probes_run_on_the_cpu_and_a_forwarded_input_is_not_a_copy():
  probes = ceilings.run_probes(1 << 12, 2, 32, 1, repeats=1, with_torch=False)
  names = {p['name'] for p in probes}
  assert {'xla_add_one', 'xla_copy', 'xla_copy_donated', 'device_put', 'xla_matmul_32'} <= names
  assert all(p.get('GBps', 0) > 0 or p.get('TFLOPs', 0) > 0 or p.get('error') for p in probes)
  srcs = [jnp.ones(8)]
  with pytest.raises(RuntimeError, match='not a copy'):
    ceilings._copy_seconds(lambda: srcs, srcs, repeats=1)


def test_pallas_copy_kernel_copies():
  x = jax.random.normal(jax.random.PRNGKey(0), (1 << 10,), jnp.bfloat16)
  np.testing.assert_array_equal(np.asarray(ceilings.pallas_copy(x, block=256)), np.asarray(x))


def _jaxlib_version():
  from jax._src.lib import version
  return tuple(version)


@pytest.mark.skipif(_jaxlib_version() > (0, 10, 2),
                    reason='newer jaxlib compiles Triton to PTX while lowering, which needs a GPU')
def test_pallas_copy_lowers_to_triton_without_a_gpu():
  x = jax.ShapeDtypeStruct((1 << 16,), jnp.bfloat16)
  fn = jax.jit(lambda x: ceilings.pallas_copy(x, block=8192, num_warps=8, interpret=False))
  text = fn.trace(x).lower(lowering_platforms=('cuda',)).as_text()
  assert 'triton' in text and 'bandwidth_copy' in text
