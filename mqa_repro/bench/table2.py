"""The paper's Table 2 on the device at hand: training, encoder, greedy and beam-4 decoder timing at the
paper's setting, each decoder number beside its roofline.

What is timed (the paper's Table 2), at the paper's dimensions with random bf16 weights:
  training   one step of B x (S + T) tokens (128 x (256 + 256) = 32,768 + 32,768), µs per target token;
  encoder    encoder + the once-per-sentence cross-attention K/V, µs per source token (B·S);
  decoder    T incremental steps at B = 1024 sequences, S = T = 128, µs per step per SENTENCE (the paper's
             "each decoder step divided by 1024"); for beam-4 the same per sentence (each step advances
             W = 4 hypotheses of it) and per hypothesis.
Shapes are fixed as in the paper: the self-attention cache holds T slots (the window for local attention),
EOS is masked so every sequence runs all T steps, and every step costs the same. Each decoder number is
set against max(bytes / bandwidth, FLOPs / peak) for the bytes a step must read (costs.decoder_step_cost:
the decoder's weights, the LIVE self-attention K/V averaged over the T steps, the whole encoder memory's
K/V), with the device's ceilings (bench.ceilings). The paper's memory/arithmetic ratios (section 3) are
evaluated for the same setting.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mqa_repro import config as cfg
from mqa_repro import costs
from mqa_repro.decoding import search
from mqa_repro.nn import transformer as mdl
from mqa_repro.bench.models import bench_spec, empty_cache, encode_memory, init_params, no_eos_step
from mqa_repro.bench.profiles import summarize_trace, trace_kernel_totals
from mqa_repro.bench.timing import median_time, out_of_memory

# The paper's Table 2 rows (the default); any row of Table 1 may be timed too (e.g. gqa2, gqa4).
VARIANTS = {'mha': 'multi-head', 'mqa': 'multi-query', 'mha_local': 'multi-head local',
            'mqa_local': 'multi-query local'}
# The paper's setting (Table 2) and a CPU-sized twin for the smoke test.
SETTINGS = {'paper': dict(batch=1024, source_len=128, target_len=128, beam=4, beam_batch=256,
                          train_batch=128, train_len=256),
            'tiny': dict(batch=8, source_len=16, target_len=16, beam=4, beam_batch=2,
                         train_batch=4, train_len=32)}
PARTS = ('greedy', 'beam', 'train')


def time_encoder(model, params, inputs) -> float:
  return median_time(lambda p, x: encode_memory(model, p, x), params, inputs)


def time_greedy(model, params, memory, inputs, target_len: int) -> float:
  step, b = no_eos_step(model), inputs.shape[0]

  def run(p, mem):
    cache = empty_cache(model, p, mem, b, target_len)
    return search.greedy_search(step, p, cache, b, target_len)
  return median_time(run, params, memory, repeats=3)


def time_beam(model, params, memory, inputs, target_len: int, beam: int, reorder: str) -> float:
  step, b = no_eos_step(model), inputs.shape[0]

  def run(p, mem):
    cache = empty_cache(model, p, mem, b * beam, target_len)
    return search.beam_search(step, p, cache, b, beam, target_len, reorder=reorder)[0]
  return median_time(run, params, memory, repeats=3)


def time_train(variant: str, size: str, batch: int, length: int, log,
               profile_dir: str | os.PathLike | None = None,
               overrides: Sequence[str] = ()) -> dict[str, Any]:
  """One training step at batch x (length + length) tokens, halving the batch until it fits;
  `overrides` are ``--config.KEY=VALUE`` items (e.g. model.attention_dropout_rate=0.0: what a piece
  costs); with `profile_dir`, two more steps are traced and summarised (`train_profile`)."""
  from mqa_repro.training.trainer import Trainer
  while batch >= 1:
    c = cfg.row_config('translate', variant, size)
    c.data.batch_size, c.data.max_length = batch, length
    cfg.apply_overrides(c, overrides)
    cfg.validate(c)
    c.model.max_length = max(c.model.max_length, length)
    try:
      tr = Trainer(c, '/tmp/mqa_repro_bench', log=lambda s: None)
      state = tr.init_state()
      tokens = jnp.full((batch, length), 7, jnp.int32)
      ones = jnp.ones((batch, length), jnp.int32)
      pos = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch, length))
      data = tr.to_global({'inputs': np.asarray(tokens), 'inputs_segmentation': np.asarray(ones),
                           'inputs_position': np.asarray(pos), 'targets': np.asarray(tokens),
                           'targets_segmentation': np.asarray(ones),
                           'targets_position': np.asarray(pos)})
      compiled = tr.compile_step(state, data)
      with tr.context():
        for _ in range(2):
          state, out = compiled(state, data)
        jax.block_until_ready(state)
        times = []
        for _ in range(5):
          start = time.perf_counter()
          state, out = compiled(state, data)
          jax.block_until_ready(state)
          times.append(time.perf_counter() - start)
        if profile_dir:
          with jax.profiler.trace(str(Path(profile_dir) / f'train_{variant}'),
                                  create_perfetto_trace=True):
            for _ in range(2):
              state, out = compiled(state, data)
            jax.block_until_ready(state)
      spec = mdl.ModelSpec.from_config(c.model)
      step_s = statistics.median(times)
      row = {'train_batch': batch, 'train_len': length, 'train_step_s': step_s,
             'train_us_per_token': step_s / (batch * length) * 1e6,
             'train_model_flops': costs.train_flops(spec, batch, length, length)}
      if profile_dir:
        row['train_profile'] = summarize_trace(
            trace_kernel_totals(Path(profile_dir) / f'train_{variant}'), 2, step_s, top=20)
      return row
    except Exception as e:  # resource exhaustion: try a smaller batch and scale per token
      if not out_of_memory(e):
        raise
      log(f'bench: training batch {batch} does not fit ({type(e).__name__}); halving')
      batch //= 2
  raise RuntimeError('no training batch fits on this device')


def bench_variant(variant: str, size: str, hw: dict[str, Any], log,
                  parts: Sequence[str] = PARTS, profile_dir: str | None = None,
                  train_overrides: Sequence[str] = (), attention_impl: str = 'xla',
                  beam_reorder: str = 'prefix') -> dict[str, Any]:
  s = SETTINGS[size]
  spec = bench_spec(variant, size, attention_impl=attention_impl)
  model = mdl.Transformer(spec)
  params = init_params(model, s['source_len'], s['target_len'])
  b, tgt = s['batch'], s['target_len']
  inputs = jnp.full((b, s['source_len']), 5, jnp.int32)
  label = VARIANTS.get(variant) or cfg.ROWS['translate'][variant].label
  row: dict[str, Any] = {'variant': variant, 'label': label, 'h': spec.num_heads,
                         'g': spec.num_kv_heads, 'window': spec.window}

  if 'greedy' in parts:
    _bench_greedy(row, model, params, spec, inputs, hw, s)
  if 'beam' in parts:
    _bench_beam(row, model, params, spec, inputs, hw, s, beam_reorder)
  if 'train' in parts:
    row.update(time_train(variant, size, s['train_batch'], s['train_len'], log, profile_dir,
                          train_overrides))
    if train_overrides:
      row['train_overrides'] = list(train_overrides)
    if 'train_profile' in row:  # model FLOPs (all matmuls) over the matmul kernels' device time
      matmul_us = row['train_profile']['categories'].get('matmul', {}).get('us_per_step')
      row['train_profile']['matmul_TFLOPs'] = (
          row['train_model_flops'] / (matmul_us * 1e-6) / 1e12 if matmul_us else None)
      log(f'bench: train profile {variant}: ' + '; '.join(
          f"{c} {v['us_per_step'] / 1e3:.1f} ms" for c, v in row['train_profile']['categories'].items())
          + f" of {row['train_step_s'] * 1e3:.1f} ms wall")
    flops, sec = row['train_model_flops'], row['train_step_s']
    row['train_mfu_vs_measured_peak'] = costs.mfu(flops, sec, hw['matmul_TFLOPs'] * 1e12)
    datasheet = costs.peak_flops(hw['device'])
    row['train_mfu_vs_datasheet'] = costs.mfu(flops, sec, datasheet) if datasheet else None
  row['paper_ratio'] = costs.paper_ratio(spec, b, tgt)
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


def greedy_roofline(spec: mdl.ModelSpec, s: dict[str, int], hw: dict[str, Any],
                    step_seconds: float) -> dict[str, Any]:
  """The greedy decoder's roofline columns for a measured step time at setting `s`."""
  b = s['batch']
  cost = costs.decoder_step_cost(spec, b, b, s['source_len'], costs.mean_live(spec.window, s['target_len']))
  roof = costs.roofline(cost, hw)
  return {'greedy_step_bytes': cost['bytes'], 'greedy_step_flops': cost['flops'],
          'greedy_roofline_us_per_token': roof['seconds'] / b * 1e6, 'greedy_bound': roof['bound'],
          'greedy_roofline_fraction': roof['seconds'] / step_seconds,
          'greedy_sequential_roofline_us_per_token': roof['sequential_seconds'] / b * 1e6,
          'greedy_sequential_roofline_fraction': roof['sequential_seconds'] / step_seconds,
          'greedy_achieved_GBps': cost['bytes'] / step_seconds / 1e9,
          'greedy_achieved_TFLOPs': cost['flops'] / step_seconds / 1e12}


def _bench_beam(row, model, params, spec, inputs, hw, s, reorder: str) -> None:
  src_len, tgt = s['source_len'], s['target_len']
  bb, w = s['beam_batch'], s['beam']
  beam_inputs = inputs[:bb]
  beam_enc_s = time_encoder(model, params, beam_inputs)
  memory = jax.jit(lambda p, x: encode_memory(model, p, x))(params, beam_inputs)
  beam_step = time_beam(model, params, memory, beam_inputs, tgt, w, reorder) / tgt
  del memory
  bcost = costs.decoder_step_cost(spec, bb * w, bb, src_len, costs.mean_live(spec.window, tgt))
  broof = costs.roofline(bcost, hw)
  row.update({'beam_batch': bb, 'beam_size': w,
              'beam_encoder_us_per_token': beam_enc_s / (bb * src_len) * 1e6,
              'beam_decoder_us_per_token': beam_step / bb * 1e6,
              'beam_decoder_us_per_hypothesis': beam_step / (bb * w) * 1e6,
              'beam_roofline_us_per_token': broof['seconds'] / bb * 1e6,
              'beam_roofline_fraction': broof['seconds'] / beam_step, 'beam_bound': broof['bound']})
  if 'greedy_decoder_us_per_token' in row:
    row['beam_vs_greedy_per_hypothesis'] = (row['beam_decoder_us_per_hypothesis']
                                            / row['greedy_decoder_us_per_token'])


def profile_decode(variant: str, size: str, out_dir: str | os.PathLike, kind: str = 'greedy',
                   top: int = 12, attention_impl: str = 'xla', beam_reorder: str = 'prefix'
                   ) -> dict[str, Any]:
  """Trace one greedy or beam-4 decode (the Table 2 shapes) with jax.profiler and sum device time per
  kernel and per category, so a missed target can be explained by what the step spends time on."""
  s = SETTINGS[size]
  model = mdl.Transformer(bench_spec(variant, size, attention_impl=attention_impl))
  params = init_params(model, s['source_len'], s['target_len'])
  b, t, w = (s['batch'], s['target_len'], 1) if kind == 'greedy' else (s['beam_batch'], s['target_len'],
                                                                      s['beam'])
  inputs = jnp.full((b, s['source_len']), 5, jnp.int32)
  memory = jax.jit(lambda p, x: encode_memory(model, p, x))(params, inputs)
  step = no_eos_step(model)
  if kind == 'greedy':
    run = jax.jit(lambda p, mem: search.greedy_search(
        step, p, empty_cache(model, p, mem, b, t), b, t))
  else:
    run = jax.jit(lambda p, mem: search.beam_search(
        step, p, empty_cache(model, p, mem, b * w, t), b, w, t, reorder=beam_reorder)[0])
  jax.block_until_ready(run(params, memory))
  start = time.perf_counter()
  jax.block_until_ready(run(params, memory))
  wall = (time.perf_counter() - start) / t  # one untraced decode: the step the busy share divides
  out_dir = Path(out_dir) / f'{kind}_{variant}'
  start = time.perf_counter()
  with jax.profiler.trace(str(out_dir), create_perfetto_trace=True):
    jax.block_until_ready(run(params, memory))
  traced = (time.perf_counter() - start) / t  # the tracer's overhead included
  return summarize_trace(trace_kernel_totals(out_dir), t, wall, top=top, traced_seconds=traced)
