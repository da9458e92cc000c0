"""Speed benchmark: the paper's Table 2 on the device at hand, every number beside a measured roofline.

    mqa-repro bench [--size paper|tiny] [--variants mha,mqa,mha_local,mqa_local] [--no-sweeps]
                    [--attention-impl xla|pallas|pallas_all] [--beam-reorder prefix|pallas|full]
                    [--profile DIR] [--kernels] [--out results/gpu/bench.json]

What is timed (PAPER.md, Table 2), at the paper's dimensions with random bf16 weights:
  training   one step of B x (S + T) tokens (128 x (256 + 256) = 32,768 + 32,768), µs per target token;
  encoder    encoder + the once-per-sentence cross-attention K/V, µs per source token (B·S);
  decoder    T incremental steps at B = 1024 sequences, S = T = 128, µs per step per SENTENCE (the paper's
             "each decoder step divided by 1024"); for beam-4 the same per sentence (each step advances
             W = 4 hypotheses of it) and per hypothesis.
Shapes are fixed as in the paper: the self-attention cache holds T slots (the window for local attention),
EOS is masked so every sequence runs all T steps, and every step costs the same.

Method (maxtext's microbenchmark): ahead-of-time compile, warm-up, ``block_until_ready``, the median of
repeats. The device's copy bandwidth and bf16 matmul rate are measured in the same run, and each decoder
number is set against max(bytes / bandwidth, FLOPs / peak) for the bytes a step must read: the decoder's
weights, the LIVE self-attention K/V (positions written so far, averaged over the T steps) and the whole
encoder memory's K/V. The paper's memory/arithmetic ratios (section 3) are evaluated for the same setting.

Sweeps (decoder µs/token vs target length, batch and kv heads g) time a step whose cache holds exactly
`length` live positions, so each point is that length's steady-state cost.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mqa_repro import config as cfg
from mqa_repro import decode as decode_lib
from mqa_repro import model as mdl
from mqa_repro.data.tokenizer import EOS_ID

VARIANTS = {'mha': 'multi-head', 'mqa': 'multi-query', 'mha_local': 'multi-head local',
            'mqa_local': 'multi-query local'}
# The paper's setting (Table 2) and a CPU-sized twin for the smoke test.
SETTINGS = {'paper': dict(batch=1024, source_len=128, target_len=128, beam=4, beam_batch=256,
                          train_batch=128, train_len=256),
            'tiny': dict(batch=8, source_len=16, target_len=16, beam=4, beam_batch=2,
                         train_batch=4, train_len=32)}
SWEEPS = {'paper': dict(length=[128, 1024, 4096], length_batch=128,
                        batch=[1, 64, 1024], kv_heads=[1, 2, 4, 8]),
          'tiny': dict(length=[8, 16, 32], length_batch=4, batch=[1, 4, 8], kv_heads=[1, 2, 8])}


# --------------------------------------------------------------------------------------------------
# Timing and the device's own limits.


def median_time(fn: Callable, *args, repeats: int = 5, warmup: int = 2) -> float:
  """Median wall time of an ahead-of-time compiled call, after warm-up, synchronised on the result."""
  compiled = jax.jit(fn).lower(*args).compile()
  for _ in range(warmup):
    jax.block_until_ready(compiled(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def measure_hardware(size: str) -> dict[str, Any]:
  """Copy bandwidth (bytes read + written per second) and the bf16 matmul rate, on this device."""
  n = (1 << 30) if size == 'paper' else (1 << 22)       # 2 GiB of bf16 on a GPU, 8 MiB on a CPU
  x = jnp.ones((n,), jnp.bfloat16)
  copy_s = median_time(lambda a: a + jnp.bfloat16(1), x, repeats=10)
  del x
  m = 8192 if size == 'paper' else 512
  a = jnp.ones((m, m), jnp.bfloat16)
  mm_s = median_time(lambda p, q: p @ q, a, a, repeats=10)
  dev = jax.devices()[0]
  return {'device': dev.device_kind, 'platform': dev.platform, 'device_count': jax.device_count(),
          'copy_GBps': 2 * n * 2 / copy_s / 1e9, 'matmul_TFLOPs': 2 * m ** 3 / mm_s / 1e12,
          'copy_bytes': 2 * n * 2, 'matmul_size': m}


# --------------------------------------------------------------------------------------------------
# Bytes and FLOPs (the roofline), from the model's dimensions.


def decoder_step_cost(spec: mdl.ModelSpec, hyps: int, sentences: int, source_len: int,
                      live: float, param_bytes: int = 2, cache_bytes: int = 2) -> dict[str, float]:
  """Bytes a decoder step must read and the FLOPs it does, for `hyps` hypotheses of `sentences`
  sentences with `live` self-attention positions each (cross-attention reads all `source_len`)."""
  d, n, k, h, v, f = spec.d_model, spec.num_heads, spec.num_kv_heads, spec.qk_dim, spec.v_dim, spec.d_ff
  layers, vocab = spec.decoder_layers, spec.vocab_size
  self_w = d * n * h + d * k * h + d * k * v + n * v * d          # q, k, v, o (k, v of the new token)
  cross_w = (d * n * h + n * v * d) if spec.encoder_layers else 0  # q, o (memory K/V precomputed)
  mlp_w = 2 * d * f
  matmul_w = layers * (self_w + cross_w + mlp_w) + d * vocab       # + the output softmax
  weight_bytes = matmul_w * param_bytes
  self_kv = hyps * live * k * (h + v) * cache_bytes * layers
  cross_kv = (sentences * source_len * k * (h + v) * cache_bytes * layers) if spec.encoder_layers else 0
  dense_flops = 2 * hyps * matmul_w
  attention_flops = 2 * hyps * n * live * (h + v) * layers
  if spec.encoder_layers:
    attention_flops += 2 * hyps * n * source_len * (h + v) * layers
  return {'bytes': weight_bytes + self_kv + cross_kv, 'weight_bytes': weight_bytes,
          'self_kv_bytes': self_kv, 'cross_kv_bytes': cross_kv, 'flops': dense_flops + attention_flops,
          'dense_flops': dense_flops, 'attention_flops': attention_flops}


def paper_ratio(spec: mdl.ModelSpec, batch: int, n: int) -> dict[str, float]:
  """Section 3's memory/arithmetic ratios for incremental decoding, with m = n (constants dropped)."""
  d, h = spec.d_model, spec.num_heads
  return {'multi_head': n / d + 1 / batch, 'multi_query': 1 / d + n / (d * h) + 1 / batch}


def roofline(cost: dict[str, float], hw: dict[str, Any]) -> dict[str, float]:
  """max(bytes / bandwidth, FLOPs / peak) for the whole step (the issue's roofline), and the
  'sequential' bound: the dense matmuls (weights) and attention (K/V) run as separate kernels one
  after the other, each at best at its own roofline, so their times add instead of overlapping."""
  bw, peak = hw['copy_GBps'] * 1e9, hw['matmul_TFLOPs'] * 1e12
  t_mem, t_math = cost['bytes'] / bw, cost['flops'] / peak
  kv = cost['self_kv_bytes'] + cost['cross_kv_bytes']
  sequential = (max(cost['weight_bytes'] / bw, cost['dense_flops'] / peak)
                + max(kv / bw, cost['attention_flops'] / peak))
  return {'seconds': max(t_mem, t_math), 'bound': 'memory' if t_mem >= t_math else 'compute',
          'memory_seconds': t_mem, 'compute_seconds': t_math, 'sequential_seconds': sequential}


# --------------------------------------------------------------------------------------------------
# The model pieces under test.


ATTENTION_IMPL = 'xla'  # decode attention path of every bench_spec (--attention-impl; config.ATTENTION_IMPLS)
BEAM_REORDER = 'prefix'  # beam search's cache reorder (--beam-reorder; decode.REORDERS)


def bench_spec(variant: str, size: str, **overrides) -> mdl.ModelSpec:
  c = cfg.row_config('translate', variant, size)
  overrides.setdefault('attention_impl', ATTENTION_IMPL)
  # inference in bf16 weights and activations; no dropout
  return mdl.ModelSpec.from_config(c.model, dtype='bfloat16', param_dtype='bfloat16', dropout_rate=0.0,
                                   attention_dropout_rate=0.0, relu_dropout_rate=0.0, **overrides)


def _init(model: mdl.Transformer, src: int, tgt: int) -> Any:
  batch = {'inputs': jnp.ones((1, src), jnp.int32), 'targets': jnp.ones((1, tgt), jnp.int32)}
  return jax.jit(lambda r: mdl.nn.meta.unbox(model.init(r, batch)['params']))(jax.random.PRNGKey(0))


def _no_eos_step(model: mdl.Transformer) -> Callable:
  """The model's step with EOS masked, so every sequence decodes the full fixed length."""
  step = decode_lib.model_step(model)

  def masked(params, cache, tokens):
    logits, cache = step(params, cache, tokens)
    return logits.at[..., EOS_ID].set(-1e9), cache
  return masked


def encode_memory(model, params, inputs) -> Any:
  """Encoder + cross-attention K/V: everything done once per source sentence."""
  encoded = model.apply({'params': params}, inputs, method=mdl.Transformer.encode)
  return model.apply({'params': params}, inputs.shape[0], 1, encoded, inputs != 0,
                     method=mdl.Transformer.init_cache)['memory']


def _empty_cache(model, params, memory, inputs, hyps: int, slots: int, index: int = 0) -> dict:
  """A decode cache of `slots` self-attention slots around a precomputed memory, built in-graph
  (zero-filling is part of decoding), with `index` positions marked as already written."""
  shapes = jax.eval_shape(lambda p, x: model.apply(
      {'params': p}, hyps, slots, model.apply({'params': p}, x, method=mdl.Transformer.encode),
      x != 0, method=mdl.Transformer.init_cache)['state'], params, inputs)
  state = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
  for layer in state:
    layer['index'] = jnp.asarray(index, jnp.int32)
  return {'state': state, 'memory': memory, 'position': jnp.asarray(index, jnp.int32)}


def time_encoder(model, params, inputs) -> float:
  return median_time(lambda p, x: encode_memory(model, p, x), params, inputs)


def time_greedy(model, params, memory, inputs, target_len: int) -> float:
  step, b = _no_eos_step(model), inputs.shape[0]

  def run(p, mem):
    cache = _empty_cache(model, p, mem, inputs, b, target_len)
    return decode_lib.greedy_search(step, p, cache, b, target_len)
  return median_time(run, params, memory, repeats=3)


def time_beam(model, params, memory, inputs, target_len: int, beam: int) -> float:
  step, b = _no_eos_step(model), inputs.shape[0]

  def run(p, mem):
    cache = _empty_cache(model, p, mem, inputs, b * beam, target_len)
    return decode_lib.beam_search(step, p, cache, b, beam, target_len, reorder=BEAM_REORDER)[0]
  return median_time(run, params, memory, repeats=3)


def time_steps(model, params, batch: int, source_len: int, live: int, steps: int = 8) -> float:
  """Seconds per decoder step with `live` positions already in a cache of `live + steps` slots."""
  inputs = jnp.full((batch, source_len), 5, jnp.int32)
  # The step's cost does not depend on the memory's values: a zero K/V of the encoder's shapes (all
  # source positions valid) saves compiling the encoder for every sweep point.
  memory = jax.tree_util.tree_map(lambda a: jnp.ones(a.shape, a.dtype) if a.dtype == jnp.bool_
                                  else jnp.zeros(a.shape, a.dtype),
                                  jax.eval_shape(lambda p, x: encode_memory(model, p, x), params, inputs))

  def run(p, mem):
    cache = _empty_cache(model, p, mem, inputs, batch, live + steps, index=live)

    def body(_, carry):
      tokens, cache = carry
      logits, cache = model.apply({'params': p}, tokens, cache, method=mdl.Transformer.step)
      return jnp.argmax(logits, -1).astype(jnp.int32), cache
    return jax.lax.fori_loop(0, steps, body, (jnp.ones((batch, 1), jnp.int32), cache))[0]
  return median_time(run, params, memory, repeats=3) / steps


def time_train(variant: str, size: str, batch: int, length: int, log,
               profile_dir: str | os.PathLike | None = None,
               overrides: Sequence[str] = ()) -> dict[str, Any]:
  """One training step at batch x (length + length) tokens, halving the batch until it fits; with
  `profile_dir`, two more steps are traced and summarised (`train_profile`)."""
  from mqa_repro.train import Trainer
  while batch >= 1:
    c = cfg.row_config('translate', variant, size)
    c.data.batch_size, c.data.max_length = batch, length
    cfg.apply_overrides(c, overrides)  # e.g. model.attention_dropout_rate=0.0: what a piece costs
    cfg.validate(c)
    c.model.max_length = max(c.model.max_length, length)
    try:
      tr = Trainer(c, '/tmp/mqa_repro_bench', with_data=False, log=lambda s: None)
      state = tr.init_state()
      tokens = jnp.full((batch, length), 7, jnp.int32)
      ones = jnp.ones((batch, length), jnp.int32)
      pos = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))
      data = tr.to_global({'inputs': np.asarray(tokens), 'inputs_segmentation': np.asarray(ones),
                           'inputs_position': np.asarray(pos), 'targets': np.asarray(tokens),
                           'targets_segmentation': np.asarray(ones),
                           'targets_position': np.asarray(pos)})
      with tr._ctx():
        compiled = tr._train_step.lower(state, data, tr.base_rng).compile()
        for _ in range(2):
          state, out = compiled(state, data, tr.base_rng)
        jax.block_until_ready(state)
        times = []
        for _ in range(5):
          start = time.perf_counter()
          state, out = compiled(state, data, tr.base_rng)
          jax.block_until_ready(state)
          times.append(time.perf_counter() - start)
        if profile_dir:
          with jax.profiler.trace(str(Path(profile_dir) / f'train_{variant}'),
                                  create_perfetto_trace=True):
            for _ in range(2):
              state, out = compiled(state, data, tr.base_rng)
            jax.block_until_ready(state)
      spec = mdl.ModelSpec.from_config(c.model)
      step_s = statistics.median(times)
      row = {'train_batch': batch, 'train_len': length, 'train_step_s': step_s,
             'train_us_per_token': step_s / (batch * length) * 1e6,
             'train_model_flops': mdl.train_flops(spec, batch, length, length)}
      if profile_dir:
        row['train_profile'] = summarize_trace(
            trace_kernel_totals(Path(profile_dir) / f'train_{variant}'), 2, step_s, top=20)
      return row
    except Exception as e:  # resource exhaustion: try a smaller batch and scale per token
      if 'RESOURCE_EXHAUSTED' not in str(e) and 'out of memory' not in str(e).lower():
        raise
      log(f'bench: training batch {batch} does not fit ({type(e).__name__}); halving')
      batch //= 2
  raise RuntimeError('no training batch fits on this device')


# --------------------------------------------------------------------------------------------------
# The benchmark.


def provenance(argv: Sequence[str] | None = None, prog: str = 'mqa-repro bench') -> dict[str, Any]:
  import flax
  import optax
  commit, dirty = os.environ.get('MQA_REPRO_COMMIT'), None  # set by whoever copied the tree over
  if not commit:                                             # (a copied .git may be stale)
    here = Path(__file__).resolve().parent
    try:
      commit = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                              cwd=here, timeout=10).stdout.strip() or None
      dirty = bool(subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no', '--', '.',
                                   ':!results'], capture_output=True, text=True, cwd=here,
                                  timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
      commit = None
    if not (commit and len(commit) == 40 and all(ch in '0123456789abcdef' for ch in commit)):
      commit, dirty = None, None
  dev = jax.devices()[0]
  return {'device': dev.device_kind, 'device_count': jax.device_count(), 'platform': dev.platform,
          'jax': jax.__version__, 'flax': flax.__version__, 'optax': optax.__version__,
          'python': platform.python_version(), 'git_commit': commit, 'git_dirty': dirty,
          'command': prog + ' ' + ' '.join(argv or []),
          'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}


PARTS = ('greedy', 'beam', 'train')


def bench_variant(variant: str, size: str, hw: dict[str, Any], log,
                  parts: Sequence[str] = PARTS, profile_dir: str | None = None,
                  train_overrides: Sequence[str] = ()) -> dict[str, Any]:
  s = SETTINGS[size]
  spec = bench_spec(variant, size)
  model = mdl.Transformer(spec)
  params = _init(model, s['source_len'], s['target_len'])
  b, src_len, tgt = s['batch'], s['source_len'], s['target_len']
  inputs = jnp.full((b, src_len), 5, jnp.int32)
  row: dict[str, Any] = {'variant': variant, 'label': VARIANTS[variant], 'h': spec.num_heads,
                         'g': spec.num_kv_heads, 'window': spec.window}

  if 'greedy' in parts:
    _bench_greedy(row, model, params, spec, inputs, hw, s)
  if 'beam' in parts:
    _bench_beam(row, model, params, spec, inputs, hw, s)
  if 'train' in parts:
    row.update(time_train(variant, size, s['train_batch'], s['train_len'], log, profile_dir,
                          train_overrides))
    if train_overrides:
      row['train_overrides'] = list(train_overrides)
    peak = hw['matmul_TFLOPs'] * 1e12
    if 'train_profile' in row:  # model FLOPs (all matmuls) over the matmul kernels' device time
      matmul_us = row['train_profile']['categories'].get('matmul', {}).get('us_per_step')
      row['train_profile']['matmul_TFLOPs'] = (
          row['train_model_flops'] / (matmul_us * 1e-6) / 1e12 if matmul_us else None)
      log(f'bench: train profile {variant}: ' + '; '.join(
          f"{c} {v['us_per_step'] / 1e3:.1f} ms" for c, v in row['train_profile']['categories'].items())
          + f" of {row['train_step_s'] * 1e3:.1f} ms wall")
    row['train_mfu_vs_measured_peak'] = row['train_model_flops'] / row['train_step_s'] / peak
    from mqa_repro.train import PEAK_FLOPS
    datasheet = next((f for name, f in PEAK_FLOPS.items() if name.lower() in hw['device'].lower()),
                     None)
    row['train_mfu_vs_datasheet'] = (row['train_model_flops'] / row['train_step_s'] / datasheet
                                     if datasheet else None)
  row['paper_ratio'] = paper_ratio(spec, b, tgt)
  log(f'bench: {variant}: ' + ', '.join(f'{k} {v:.4g}' for k, v in row.items()
                                         if k.endswith(('us_per_token', 'fraction', 'per_hypothesis',
                                                        'mfu_vs_datasheet')) and v is not None))
  return row


def _bench_greedy(row, model, params, spec, inputs, hw, s) -> None:
  b, src_len, tgt = s['batch'], s['source_len'], s['target_len']
  enc_s = time_encoder(model, params, inputs)
  memory = jax.jit(lambda p, x: encode_memory(model, p, x))(params, inputs)
  greedy_s = time_greedy(model, params, memory, inputs, tgt)
  del memory
  row['greedy_encoder_us_per_token'] = enc_s / (b * src_len) * 1e6
  row['greedy_decoder_us_per_token'] = greedy_s / (tgt * b) * 1e6
  row['greedy_decoder_ms_per_step'] = greedy_s / tgt * 1e3
  row.update(greedy_roofline(spec, s, hw, greedy_s / tgt))


def mean_live(spec: mdl.ModelSpec, target_len: int) -> float:
  """Live self-attention positions averaged over T steps: step t reads min(t + 1, window)."""
  return statistics.mean(min(t + 1, spec.window or t + 1) for t in range(target_len))


def greedy_roofline(spec: mdl.ModelSpec, s: dict[str, int], hw: dict[str, Any],
                    step_seconds: float) -> dict[str, Any]:
  """The greedy decoder's roofline columns for a measured step time at setting `s`."""
  b = s['batch']
  cost = decoder_step_cost(spec, b, b, s['source_len'], mean_live(spec, s['target_len']))
  roof = roofline(cost, hw)
  return {'greedy_step_bytes': cost['bytes'], 'greedy_step_flops': cost['flops'],
          'greedy_roofline_us_per_token': roof['seconds'] / b * 1e6, 'greedy_bound': roof['bound'],
          'greedy_roofline_fraction': roof['seconds'] / step_seconds,
          'greedy_sequential_roofline_us_per_token': roof['sequential_seconds'] / b * 1e6,
          'greedy_sequential_roofline_fraction': roof['sequential_seconds'] / step_seconds,
          'greedy_achieved_GBps': cost['bytes'] / step_seconds / 1e9,
          'greedy_achieved_TFLOPs': cost['flops'] / step_seconds / 1e12}


def _bench_beam(row, model, params, spec, inputs, hw, s) -> None:
  src_len, tgt = s['source_len'], s['target_len']
  bb, w = s['beam_batch'], s['beam']
  beam_inputs = inputs[:bb]
  beam_enc_s = time_encoder(model, params, beam_inputs)
  memory = jax.jit(lambda p, x: encode_memory(model, p, x))(params, beam_inputs)
  beam_step = time_beam(model, params, memory, beam_inputs, tgt, w) / tgt
  del memory
  bcost = decoder_step_cost(spec, bb * w, bb, src_len, mean_live(spec, tgt))
  broof = roofline(bcost, hw)
  row.update({'beam_batch': bb, 'beam_size': w,
              'beam_encoder_us_per_token': beam_enc_s / (bb * src_len) * 1e6,
              'beam_decoder_us_per_token': beam_step / bb * 1e6,
              'beam_decoder_us_per_hypothesis': beam_step / (bb * w) * 1e6,
              'beam_roofline_us_per_token': broof['seconds'] / bb * 1e6,
              'beam_roofline_fraction': broof['seconds'] / beam_step, 'beam_bound': broof['bound']})
  if 'greedy_decoder_us_per_token' in row:
    row['beam_vs_greedy_per_hypothesis'] = (row['beam_decoder_us_per_hypothesis']
                                            / row['greedy_decoder_us_per_token'])


def sweep(size: str, hw: dict[str, Any], variants: Sequence[str], log,
          out: dict[str, list] | None = None, save: Callable[[], None] = lambda: None,
          points: dict[str, list[int]] | None = None) -> dict[str, list]:
  """`points` replaces SWEEPS[size]'s lists (length, batch, kv_heads), e.g. to finish a cut run."""
  s, sw = SETTINGS[size], {**SWEEPS[size], **(points or {})}
  out = {'length': [], 'batch': [], 'kv_heads': []} if out is None else out

  last: dict[str, Any] = {}  # the previous point's params, reused while the spec is unchanged
  timed: dict[tuple, float] = {}

  def point(kind, variant, x, spec, batch, live):
    model = mdl.Transformer(spec)
    if last.get('spec') != spec:
      last.clear()
      last.update(spec=spec, params=_init(model, s['source_len'], 8))
    params = last['params']
    try:
      key = (spec, batch, live)  # e.g. kv-heads g = h is the batch sweep's multi-head point
      sec = timed[key] if key in timed else time_steps(model, params, batch, s['source_len'], live)
      timed[key] = sec
    except Exception as e:
      if 'RESOURCE_EXHAUSTED' not in str(e) and 'out of memory' not in str(e).lower():
        raise
      log(f'bench: sweep {kind} {variant} x={x} does not fit; skipped')
      return
    cost = decoder_step_cost(spec, batch, batch, s['source_len'], min(live + 1, spec.window or live + 1))
    roof = roofline(cost, hw)
    out[kind].append({'variant': variant, 'x': x, 'us_per_token': sec / batch * 1e6,
                      'roofline_us_per_token': roof['seconds'] / batch * 1e6, 'bound': roof['bound'],
                      'roofline_fraction': roof['seconds'] / sec})
    save()
    log(f"bench: sweep {kind:8s} {variant:9s} x={x:<5} {sec / batch * 1e6:9.3f} us/token "
        f"(roofline {roof['seconds'] / batch * 1e6:.3f})")

  for variant in variants:
    for length in sw['length']:
      spec = bench_spec(variant, size, max_length=max(length + 16, 256))
      point('length', variant, length, spec, sw['length_batch'], length)
  for variant in [v for v in variants if v in ('mha', 'mqa')]:
    for batch in sw['batch']:
      point('batch', variant, batch, bench_spec(variant, size), batch, s['target_len'] // 2)
  for g in sw['kv_heads']:
    spec = bench_spec('mha', size, num_kv_heads=g)
    point('kv_heads', f'g{g}', g, spec, s['batch'], s['target_len'] // 2)
  return out


# Decode attention alone: the XLA einsums (the reference path) against tunings of the Pallas kernel.
# A case: (name, kv heads K, query heads per kv head G, beams W, memory rows B, slots S, live slots,
# cross): self-attention reads `live` of S slots (a step halfway through T = 128), cross-attention
# all S under a source mask; beam cases share one memory row among W hypotheses.
KERNEL_CASES = {
    'paper': [('mha self', 8, 1, 1, 1024, 128, 64, False), ('mha cross', 8, 1, 1, 1024, 128, 128, True),
              ('mqa self', 1, 8, 1, 1024, 128, 64, False), ('mqa cross', 1, 8, 1, 1024, 128, 128, True),
              ('mha beam cross', 8, 1, 4, 256, 128, 128, True),
              ('mqa beam cross', 1, 8, 4, 256, 128, 128, True)],
    'tiny': [('mha self', 2, 1, 1, 4, 16, 8, False), ('mqa cross', 1, 2, 2, 2, 16, 16, True)]}


def kernel_tunings(size: str, m: int) -> list[dict[str, Any]]:
  """Pallas tunings to time for M = W·G query rows per kv head ({} = the kernel's defaults)."""
  if size != 'paper':
    return [{}, dict(tensor_cores=True, block_k=8)]
  dots = [dict(tensor_cores=True, block_k=bk, num_warps=nw) for bk in (32, 64) for nw in (2, 4, 8)]
  if m >= 8:  # the CUDA-core path wastes [M, bk, H] registers here (measured 10-100x slower)
    return [{}] + dots + [dict(tensor_cores=True, block_k=64, num_warps=4, num_stages=3)]
  return [{}] + [dict(tensor_cores=False, block_k=bk, num_warps=nw)
                 for bk in (16, 32, 64) for nw in (1, 2, 4)] + dots[:4]


def kernel_bench(size: str, hw: dict[str, Any], log, loops: int = 20, rows: list | None = None,
                 save: Callable[[], None] = lambda: None) -> list[dict[str, Any]]:
  """µs and GB/s of one decode-attention call per case and implementation. `loops` calls run in one
  compiled loop (each query depends on the previous output), so launch gaps count but host dispatch
  does not. Bytes are what the call must read and write: the live K/V, q and the output."""
  from mqa_repro.attention import attend
  from mqa_repro.kernels import decode_attention
  hd = 128 if size == 'paper' else 16
  rows = [] if rows is None else rows
  for name, kv, g, w, b, slots, live, cross in KERNEL_CASES[size]:
    kq, kk, kvv = jax.random.split(jax.random.PRNGKey(0), 3)
    q = (jax.random.normal(kq, (b * w, kv, g, hd)) * hd ** -0.5).astype(jnp.bfloat16)
    k = jax.random.normal(kk, (b, slots, kv, hd)).astype(jnp.bfloat16)
    v = jax.random.normal(kvv, (b, slots, kv, hd)).astype(jnp.bfloat16)
    mask = jnp.broadcast_to(jnp.arange(slots) < live, (b, slots))
    nbytes = b * live * kv * 2 * hd * 2 + 2 * q.size * 2

    def xla(q, k, v, mask):  # what Attention.decode_self / decode_cross run with impl='xla'
      o = attend(q.reshape(b, w, 1, kv, g, hd), k, v, mask[:, None, None, None, None, :])
      return o.reshape(q.shape)

    impls = [('xla', None, xla)]
    for t in kernel_tunings(size, w * g):
      if cross:
        fn = lambda q, k, v, mask, t=t: decode_attention(q, k, v, mask=mask, beams=w, **t)
      else:
        fn = lambda q, k, v, mask, t=t: decode_attention(q, k, v, length=live, beams=w, **t)
      impls.append(('pallas', t, fn))
    for impl, tuning, fn in impls:
      def loop(q, k, v, mask, fn=fn):
        return jax.lax.fori_loop(0, loops, lambda _, x: x + (1e-3 * fn(x, k, v, mask)).astype(x.dtype), q)
      try:
        sec = median_time(loop, q, k, v, mask, repeats=5) / loops
      except Exception as e:  # a tuning Triton cannot compile (registers, shared memory): record it
        log(f'bench: kernel {name} {impl} {tuning}: {type(e).__name__}: {str(e)[:160]}')
        rows.append({'case': name, 'impl': impl, 'tuning': tuning, 'error': str(e)[:300]})
        save()
        continue
      row = {'case': name, 'impl': impl, 'tuning': tuning, 'kv_heads': kv, 'group': g, 'beams': w,
             'rows': b, 'slots': slots, 'live': live, 'us': sec * 1e6, 'bytes': nbytes,
             'GBps': nbytes / sec / 1e9, 'copy_fraction': nbytes / sec / 1e9 / hw['copy_GBps']}
      rows.append(row)
      save()
      log(f"bench: kernel {name:15s} {impl:6s} {str(tuning or ''):55s} {row['us']:8.1f} us "
          f"{row['GBps']:7.0f} GB/s ({100 * row['copy_fraction']:.0f}% of copy)")
  return rows


def trace_kernel_totals(trace_dir: str | os.PathLike) -> dict[str, float]:
  """Device µs per kernel name, summed over the newest jax.profiler Perfetto trace under trace_dir."""
  import gzip
  traces = sorted(Path(trace_dir).rglob('perfetto_trace.json.gz'), key=lambda f: f.stat().st_mtime)
  if not traces:
    return {}
  events = json.load(gzip.open(traces[-1])).get('traceEvents', [])
  pids = {e['pid']: e.get('args', {}).get('name', '') for e in events if e.get('ph') == 'M'
          and e.get('name') == 'process_name'}
  totals: dict[str, float] = {}
  for e in events:
    if e.get('ph') == 'X' and ('/device:GPU' in pids.get(e.get('pid'), '') or
                               'TPU' in pids.get(e.get('pid'), '')):
      totals[e['name']] = totals.get(e['name'], 0.0) + float(e.get('dur', 0.0))
  if not totals:  # no device stream (the CPU backend): every timed event, host ones included
    for e in events:
      if e.get('ph') == 'X':
        totals[e['name']] = totals.get(e['name'], 0.0) + float(e.get('dur', 0.0))
    totals[HOST_EVENTS] = 0.0  # marks totals that are not device time
  return totals


HOST_EVENTS = '(host events: no device stream in the trace)'


# Kernel names as XLA:GPU and cuBLAS/cuDNN/Triton print them, by what the kernel does.
_CATEGORIES = (('matmul', ('gemm', 'cublas', 'cutlass', 'nvjet', 'xmma', 'sm90_', 'sm80_', 'dot')),
               ('attention kernel', ('decode_attention', 'pallas')),
               ('collective', ('nccl', 'all-reduce', 'all_reduce', 'all-gather')),
               ('copy/memset', ('memcpy', 'memset', 'copy')),
               ('reduce fusion', ('reduce', 'scatter', 'sort', 'topk')),
               ('elementwise fusion', ('fusion', 'loop', 'convert', 'transpose', 'broadcast')))


def kernel_category(name: str) -> str:
  low = name.lower()
  return next((cat for cat, keys in _CATEGORIES if any(k in low for k in keys)), 'other')


def summarize_trace(totals: dict[str, float], per: int, wall_seconds: float | None = None,
                    top: int = 12) -> dict[str, Any]:
  """Top kernels and per-category device time, each per `per` (steps traced), with the share of the
  measured wall time the device was busy (kernels of one stream; gaps are launch/host time)."""
  total = sum(totals.values()) or 1.0
  ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
  cats: dict[str, float] = {}
  for name, us in totals.items():
    cats[kernel_category(name)] = cats.get(kernel_category(name), 0.0) + us
  out = {'kernels': [{'kernel': name[:120], 'category': kernel_category(name), 'us_per_step': us / per,
                      'share': us / total} for name, us in ranked],
         'categories': {c: {'us_per_step': us / per, 'share': us / total}
                        for c, us in sorted(cats.items(), key=lambda kv: -kv[1])},
         'device_us_per_step': total / per}
  if wall_seconds and HOST_EVENTS not in totals:
    out['wall_us_per_step'] = wall_seconds * 1e6
    out['device_busy_fraction'] = total / per / (wall_seconds * 1e6)
  return out


def profile_decode(variant: str, size: str, out_dir: str | os.PathLike, kind: str = 'greedy',
                   top: int = 12) -> dict[str, Any]:
  """Trace one greedy or beam-4 decode (the Table 2 shapes) with jax.profiler and sum device time per
  kernel and per category, so a missed target can be explained by what the step spends time on."""
  s = SETTINGS[size]
  model = mdl.Transformer(bench_spec(variant, size))
  params = _init(model, s['source_len'], s['target_len'])
  b, t, w = (s['batch'], s['target_len'], 1) if kind == 'greedy' else (s['beam_batch'], s['target_len'],
                                                                      s['beam'])
  inputs = jnp.full((b, s['source_len']), 5, jnp.int32)
  memory = jax.jit(lambda p, x: encode_memory(model, p, x))(params, inputs)
  step = _no_eos_step(model)
  if kind == 'greedy':
    run = jax.jit(lambda p, mem: decode_lib.greedy_search(
        step, p, _empty_cache(model, p, mem, inputs, b, t), b, t))
  else:
    run = jax.jit(lambda p, mem: decode_lib.beam_search(
        step, p, _empty_cache(model, p, mem, inputs, b * w, t), b, w, t, reorder=BEAM_REORDER)[0])
  jax.block_until_ready(run(params, memory))
  out_dir = Path(out_dir) / f'{kind}_{variant}'
  start = time.perf_counter()
  with jax.profiler.trace(str(out_dir), create_perfetto_trace=True):
    jax.block_until_ready(run(params, memory))
  wall = (time.perf_counter() - start) / t  # traced wall time per step (tracing overhead included)
  return summarize_trace(trace_kernel_totals(out_dir), t, wall, top=top)


def run_benchmark(size: str = 'paper', variants: Sequence[str] = tuple(VARIANTS), sweeps: bool = True,
                  out: str | os.PathLike | None = None, argv: Sequence[str] | None = None,
                  log=print, table2: bool = True, profile_dir: str | None = None,
                  parts: Sequence[str] = PARTS, kernels: bool = False,
                  sweep_points: dict[str, list[int]] | None = None,
                  train_overrides: Sequence[str] = ()) -> dict[str, Any]:
  """Measure Table 2 (and the sweeps, the decode-attention kernels) on this device; write JSON to
  `out` if given."""
  hw = measure_hardware(size)
  log(f"bench: {hw['device']}: copy {hw['copy_GBps']:.0f} GB/s, bf16 matmul "
      f"{hw['matmul_TFLOPs']:.1f} TFLOP/s (measured)")
  result = {'provenance': provenance(argv),
            'setting': {'size': size, **SETTINGS[size], 'attention_impl': ATTENTION_IMPL,
                        'beam_reorder': BEAM_REORDER},
            'hardware': hw}
  def save():  # after every piece, so a run cut short still leaves what it measured
    if out:
      Path(out).parent.mkdir(parents=True, exist_ok=True)
      Path(out).write_text(json.dumps(result, indent=1))

  if kernels:
    result['kernels'] = []
    kernel_bench(size, hw, log, rows=result['kernels'], save=save)
  if table2:
    result['table2'] = []
    for v in variants:
      result['table2'].append(bench_variant(v, size, hw, log, parts, profile_dir, train_overrides))
      save()
  for kind in [k for k in ('greedy', 'beam') if profile_dir and table2 and k in parts]:
    # 'profiles' (greedy) keeps its earlier layout: variant -> top kernels
    key = 'profiles' if kind == 'greedy' else 'beam_profiles'
    result[key] = {}
    for v in variants:
      summary = profile_decode(v, size, profile_dir, kind)
      result[key][v] = summary['kernels'] if kind == 'greedy' else summary
      log(f'bench: {kind} profile {v}: ' + '; '.join(
          f"{c} {x['us_per_step']:.0f} us" for c, x in summary['categories'].items()) + ' per step')
      save()
  if sweeps:
    result['sweeps'] = {'length': [], 'batch': [], 'kv_heads': []}
    sweep(size, hw, variants, log, result['sweeps'], save, sweep_points)
  save()
  if out:
    log(f'bench: wrote {out}')
  return result


def main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(prog='mqa-repro bench', description=__doc__.split('\n\n')[0])
  parser.add_argument('--size', default='paper', choices=sorted(SETTINGS))
  parser.add_argument('--variants', default=','.join(VARIANTS))
  parser.add_argument('--no-sweeps', action='store_true')
  parser.add_argument('--sweeps-only', action='store_true', help='skip Table 2, run the sweeps')
  parser.add_argument('--profile', default=None,
                      help='trace one greedy decode (and, with train in --parts, two training steps) '
                           'per variant here, and summarise device time per kernel')
  parser.add_argument('--parts', default=','.join(PARTS), help='Table 2 columns to time')
  parser.add_argument('--out', default=None, help='JSON path (default results/<device>/bench.json)')
  parser.add_argument('--attention-impl', default='xla', choices=cfg.ATTENTION_IMPLS,
                      help="decode attention: XLA einsums or the Pallas kernel (mqa_repro.kernels)")
  parser.add_argument('--train-set', action='append', default=[], metavar='KEY=VALUE',
                      help='override the training config (e.g. model.attention_dropout_rate=0.0) '
                           'to measure what a piece of the step costs; recorded in the row')
  parser.add_argument('--beam-reorder', default=None, choices=('prefix', 'pallas', 'full'),
                      help="beam search's cache reorder: XLA's gather of the written slots, the Pallas "
                           "in-place kernel, or whole leaves (default: pallas with a pallas "
                           "--attention-impl, else prefix)")
  parser.add_argument('--kernels', action='store_true',
                      help='only the decode-attention microbenchmark (XLA vs Pallas tunings)')
  point_flags = {'--lengths': 'length', '--batches': 'batch', '--kv-heads': 'kv_heads'}
  for flag, key in point_flags.items():
    parser.add_argument(flag, default=None, dest=key,
                        help=f'sweep points, comma-separated (default SWEEPS[size][{key!r}]; "" = none)')
  args = parser.parse_args(argv)
  points = {}
  for flag, key in point_flags.items():
    value = getattr(args, key)
    if value is not None:
      try:
        points[key] = [int(x) for x in value.split(',') if x]
      except ValueError:
        parser.error(f'{flag} takes comma-separated integers, got {value!r}')
  global ATTENTION_IMPL, BEAM_REORDER
  ATTENTION_IMPL = args.attention_impl
  BEAM_REORDER = args.beam_reorder or ('prefix' if args.attention_impl == 'xla' else 'pallas')
  variants = [v for v in args.variants.split(',') if v]
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown:
    parser.error(f'unknown variants {unknown}; choose from {list(VARIANTS)}')
  try:  # fail before any timing, naming the bad key
    cfg.apply_overrides(cfg.row_config('translate', (variants or ['mha'])[0], args.size), args.train_set)
  except ValueError as e:
    parser.error(f'--train-set: {e}')
  out = args.out or f"results/{'gpu' if jax.devices()[0].platform == 'gpu' else 'cpu'}/bench.json"
  run_benchmark(args.size, variants, not (args.no_sweeps or args.kernels), out, argv,
                table2=not (args.sweeps_only or args.kernels), profile_dir=args.profile,
                parts=[p for p in args.parts.split(',') if p], kernels=args.kernels,
                sweep_points=points, train_overrides=args.train_set)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
