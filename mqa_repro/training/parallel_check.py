"""Multi-device verification: the same training steps and decodes on 1 device vs N, as one process or
one process per device (how a multi-host pod run starts), with throughput and scaling efficiency.

    mqa-repro parallel-check --config configs/wmt_mqa.py:gpu --layouts data,model \
        --steps 20 --out results/x2/parallel.json                    # one process, all local GPUs
    MQA_REPRO_DISTRIBUTED=1 MQA_REPRO_COORDINATOR=localhost:12355 MQA_REPRO_NUM_PROCESSES=2 \
        MQA_REPRO_PROCESS_ID=$i mqa-repro parallel-check ...                         # each process
    mqa-repro parallel-check --compare BASE.json RUN.json    # a multi-process run against 1 process

Losses are compared in float32 (a bf16 run differs by reduction order alone); throughput is measured
in the config's own dtype. Synthetic token batches keep the check independent of data and vocabulary.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mqa_repro import config as cfg
from mqa_repro import tasks
from mqa_repro.decoding import batch as decode_batch
from mqa_repro.decoding import search
from mqa_repro.nn import kv_cache
from mqa_repro.nn import transformer as mdl
from mqa_repro.training.trainer import Trainer

LAYOUTS = {'single': (1, 1, 1), 'data': (-1, 1, 1), 'fsdp': (1, -1, 1), 'model': (1, 1, -1)}


def synthetic_batches(config, steps: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
  """Global batches of random tokens, two packed examples per row (segments 1 and 2)."""
  rng = np.random.default_rng(seed)
  b, length = config.data.batch_size, config.data.max_length
  half = length // 2
  seg = np.concatenate([np.ones(half, np.int32), 2 * np.ones(length - half, np.int32)])
  pos = np.concatenate([np.arange(half), np.arange(length - half)]).astype(np.int32)
  out = []
  for _ in range(steps):
    batch = {}
    for side in reversed(tasks.get(config.task).sides):     # targets drawn first
      batch.update({side: rng.integers(4, config.model.vocab_size, (b, length)).astype(np.int32),
                    f'{side}_segmentation': np.tile(seg, (b, 1)),
                    f'{side}_position': np.tile(pos, (b, 1))})
    out.append(batch)
  return out


def _local_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """This process's contiguous share of a global batch (what its data pipeline would feed)."""
  n, i = jax.process_count(), jax.process_index()
  rows = next(iter(batch.values())).shape[0] // n
  return {k: v[i * rows:(i + 1) * rows] for k, v in batch.items()}


def run_layout(config, layout: str, batches, devices=None, timed_steps: int = 10) -> dict[str, Any]:
  c = cfg.validate(config)
  c.mesh.data, c.mesh.fsdp, c.mesh.model = LAYOUTS[layout]
  devices = devices if devices is not None else (jax.devices()[:1] if layout == 'single' else None)
  tr = Trainer(c, '/tmp/mqa_repro_parallel', devices=devices, log=lambda s: None)
  state = tr.init_state()
  losses = []
  with tr.context():
    for batch in batches:
      state, out = tr.train_step(state, tr.to_global(_local_rows(batch)))
      losses.append(float(out['loss']))
    jax.block_until_ready(state)
    times = []
    data = tr.to_global(_local_rows(batches[0]))
    for _ in range(timed_steps):
      start = time.perf_counter()
      state, out = tr.train_step(state, data)
      jax.block_until_ready(out['loss'])
      times.append(time.perf_counter() - start)
  step_s = statistics.median(times)
  tokens = sum(float(np.sum(batches[0][f'{side}_segmentation'] > 0))
               for side in reversed(tasks.get(config.task).sides))
  return {'layout': layout, 'mesh': dict(tr.mesh.shape), 'devices': tr.mesh.devices.size,
          'processes': jax.process_count(), 'losses': losses, 'step_s': step_s,
          'tokens_per_s': tokens / step_s, 'kv_sharding': str(
              tr.param_shardings['decoder_0']['self_attn']['key'].spec)}


def decode_check(config, batch: int, src_len: int, tgt_len: int) -> dict[str, Any]:
  """Greedy-decode one batch on 1 device and with the batch split over all devices."""
  spec = mdl.ModelSpec.from_config(config.model, dtype='bfloat16', param_dtype='bfloat16',
                                    dropout_rate=0.0, attention_dropout_rate=0.0, relu_dropout_rate=0.0)
  model = mdl.Transformer(spec)
  ex = {'inputs': jnp.ones((1, src_len), jnp.int32), 'targets': jnp.ones((1, tgt_len), jnp.int32)}
  params = jax.jit(lambda r: mdl.nn.meta.unbox(model.init(r, ex)['params']))(jax.random.PRNGKey(0))
  rng = np.random.default_rng(1)
  inputs = rng.integers(4, spec.vocab_size, (batch, src_len)).astype(np.int32)

  def greedy(p, x):
    cache = kv_cache.for_sources(model, p, x, x.shape[0], tgt_len)
    return search.greedy_search(decode_batch.model_step(model), p, cache, x.shape[0], tgt_len)

  results = {}
  for name, devs in (('one_device', jax.local_devices()[:1]), ('all_devices', jax.devices())):
    mesh = jax.sharding.Mesh(np.asarray(devs), ('data',))
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    p = jax.device_put(params, repl)
    x = jax.make_array_from_process_local_data(rows, _local_rows({'x': inputs})['x']) \
        if name == 'all_devices' else jax.device_put(inputs, rows)
    fn = jax.jit(greedy, in_shardings=(repl, rows), out_shardings=rows).lower(p, x).compile()
    out = fn(p, x)
    jax.block_until_ready(out)
    times = []
    for _ in range(3):
      start = time.perf_counter()
      jax.block_until_ready(fn(p, x))
      times.append(time.perf_counter() - start)
    # the one-device run is process-local; the split one spans processes and must be gathered
    tokens = np.asarray(jax.experimental.multihost_utils.process_allgather(out, tiled=True)) \
        if name == 'all_devices' and jax.process_count() > 1 else np.asarray(out)
    results[name] = {'devices': len(devs), 'seconds': statistics.median(times),
                     'us_per_token_incl_encoder': statistics.median(times) / (batch * tgt_len) * 1e6,
                     'tokens': tokens}
  a, b = results['one_device']['tokens'], results['all_devices']['tokens']
  same = bool(a.shape == b.shape and np.array_equal(a, b))
  for r in results.values():
    r.pop('tokens')
  return {'batch': batch, 'source_len': src_len, 'target_len': tgt_len, 'identical_hypotheses': same,
          **results}


def compare(base: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
  """A multi-process run's checks against a 1-process run's 1-device baselines (which a
  multi-process run cannot measure itself): relative loss gap and throughput scaling."""
  single = base['single_float32']['losses']
  one_gpu = next(c['single_device_tokens_per_s'] for c in base['checks'].values()
                 if c.get('single_device_tokens_per_s'))
  out: dict[str, Any] = {}
  for name, c in run['checks'].items():
    if 'losses' in c:
      out[name] = {'max_rel_loss_diff': float(np.max(np.abs(np.array(c['losses']) - single)
                                                     / np.abs(single)))}
    elif 'tokens_per_s' in c:
      n = run['checks'][name.rsplit('_', 1)[0] + '_float32']['devices']
      out[name] = {'tokens_per_s': c['tokens_per_s'], 'single_device_tokens_per_s': one_gpu,
                   'scaling_efficiency': c['tokens_per_s'] / (one_gpu * n)}
  return out


def run_checks(config_spec: str, overrides: Sequence[str], layouts: Sequence[str], steps: int = 10,
               rtol: float = 1e-4, decode_batch: int = 256, out: str | None = None,
               argv: Sequence[str] = ()) -> dict[str, Any]:
  """Every check of the module docstring for a config file; the JSON is rewritten at `out` after
  each stage, so a run cut short keeps what it checked."""
  import jax.experimental.multihost_utils  # noqa: F401  (decode_check gathers across processes)
  from mqa_repro import provenance
  from mqa_repro.report import records
  config = cfg.load_config(config_spec, overrides)
  result: dict[str, Any] = {'provenance': provenance.collect('mqa-repro parallel-check', argv),
                            'config': config.name, 'checks': {}}
  exact = cfg.load_config(config_spec, [*overrides, '--config.model.dtype=float32'])
  # A float32 config's speed is the exact run's own timing: nothing is compiled and timed twice.
  same = config.model.dtype == 'float32'
  batches = synthetic_batches(exact, steps)
  single = run_layout(exact, 'single', batches) if jax.process_count() == 1 else None
  base = None if jax.process_count() > 1 else single if same else \
      run_layout(config, 'single', synthetic_batches(config, 2))

  def save(stage: str) -> None:
    if jax.process_index() == 0:
      print(f'parallel_check: {stage} done', flush=True)
      if out:
        records.write_json(out, result)
  if single is not None:
    result['single_float32'] = single
  save('1-device baselines')
  for layout in layouts:
    r = run_layout(exact, layout, batches)
    if single is not None:
      r['max_rel_loss_diff'] = float(np.max(np.abs(np.array(r['losses']) - single['losses'])
                                            / np.abs(single['losses'])))
      r['losses_match'] = r['max_rel_loss_diff'] <= rtol
    result['checks'][f'{layout}_float32'] = r
    speed = r if same else run_layout(config, layout, synthetic_batches(config, 2))
    # (for a float32 config the same entry as the loss check: add to it, do not replace it)
    result['checks'].setdefault(f'{layout}_{config.model.dtype}', {}).update({
        'tokens_per_s': speed['tokens_per_s'], 'step_s': speed['step_s'],
        'single_device_tokens_per_s': base['tokens_per_s'] if base else None,
        'scaling_efficiency': (speed['tokens_per_s'] / (base['tokens_per_s'] * speed['devices'])
                               if base else None)})
    save(layout)
  result['decode'] = decode_check(config, decode_batch, 64, 64)
  save('decode')
  return result
