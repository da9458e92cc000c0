"""LM decoding: our decoder-only LM generating N tokens greedily, beside the peers a user would pick
instead (peers.py), on the same device at the same dimensions, into one JSON.

The LM is Table 3's at the paper's size (6 layers, d_model 1024, 8 heads of 128, d_ff 8192 multi-head,
9088 multi-query and the grouped rows' own widths by the equal-parameter rule, vocabulary 32768), with
random bf16 weights and a position table of N + 1 entries. From a 1-token prompt (BOS) every row
generates exactly N tokens: EOS is masked, so no row ends early and each of the N steps costs what a
full batch costs. Our path is the project's own: ``search.greedy_search`` over ``Transformer.step``
with the cache of ``kv_cache.for_sources`` (N slots), the attention path chosen by
``attention_impl`` (nn/decode_impl.py).

Each point (system, variant, batch B, new tokens N) times the whole generation (cache zero-fill
included where the system does it per call; ours builds its cache in the timed graph) as the median
of repeats after warm-up, and reports µs per token (per sequence-token: seconds / (B·N)) and ms per
step (seconds / N). Beside it: the bytes a step must read (weights + the live K/V, averaged over the N
steps: (N + 1) / 2 positions) and the FLOPs, and the fraction of the roofline and of the sequential
roofline (weights then K/V, each at its own bound; costs.roofline) they reach against the hardware
ceilings (the higher of measured and datasheet: bench.ceilings). ``ratios`` holds ours / peer time.

With --resume, points already in the output file are kept and not measured again, so a run cut by a
time budget (which stops before a point that would not fit) continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from mqa_repro import config as cfg
from mqa_repro import costs
from mqa_repro.decoding import search
from mqa_repro.nn import kv_cache
from mqa_repro.nn import transformer as mdl
from mqa_repro.bench import peers as peers_lib
from mqa_repro.bench.models import bench_spec, init_params, no_eos_step
from mqa_repro.bench.profiles import summarize_trace, trace_kernel_totals
from mqa_repro.bench.timing import Budget, median_seconds, out_of_memory, warmup_after
from mqa_repro.data.tokenizer import PAD_ID

# The paper's LM (Table 3) and a CPU-sized twin for the tests.
LM_SETTINGS = {'paper': dict(batches=(1, 8, 64, 1024), new_tokens=(128, 1024),
                             variants=('mha', 'mqa', 'gqa2', 'gqa4')),
               'tiny': dict(batches=(1, 2), new_tokens=(8,), variants=('mha', 'mqa'))}


@dataclasses.dataclass(frozen=True)
class LmDecodeOptions:
  """What to run; None = LM_SETTINGS[size]'s points."""
  batches: Sequence[int] | None = None
  new_tokens: Sequence[int] | None = None
  variants: Sequence[str] | None = None
  peers: Sequence[str] = peers_lib.PEERS
  attention_impl: str = 'xla'
  repeats: int = 3
  profile_dir: str | None = None   # trace one more generation of each of our points here

  def resolved(self, size: str) -> 'LmDecodeOptions':
    d = LM_SETTINGS[size]
    return dataclasses.replace(self, batches=tuple(self.batches or d['batches']),
                               new_tokens=tuple(self.new_tokens or d['new_tokens']),
                               variants=tuple(self.variants or d['variants']), peers=tuple(self.peers))


def lm_spec(variant: str, size: str, new_tokens: int, attention_impl: str = 'xla') -> mdl.ModelSpec:
  """Table 3's row `variant`, bf16, with a position table for the prompt and N new tokens."""
  base = cfg.row_config('lm', variant, size).model.max_length
  return bench_spec(variant, size, task='lm', attention_impl=attention_impl,
                    max_length=max(base, new_tokens + 1))


def time_ours(model: mdl.Transformer, params: Any, batch: int, new_tokens: int,
              repeats: int, profile_dir: str | os.PathLike | None = None) -> dict[str, Any]:
  """Seconds of one greedy generation of N tokens for `batch` rows: ahead-of-time compiled, the
  first run checked (every row has N tokens), then the median of `repeats` after a warm-up. With
  `profile_dir`, one more generation is traced there and summed per kernel, per step ('profile':
  where a step's device time goes, and how much of the timed step the device is busy at all)."""
  step = no_eos_step(model)

  def run(p):
    cache = kv_cache.for_sources(model, p, None, batch, new_tokens)
    return search.greedy_search(step, p, cache, batch, new_tokens)
  start = time.perf_counter()
  compiled = jax.jit(run).lower(params).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  out = np.asarray(compiled(params))
  first = time.perf_counter() - start
  if out.shape != (batch, new_tokens) or (out == PAD_ID).any():
    raise RuntimeError(f'greedy_search decoded {out.shape} with PAD inside: some row ended early')
  sec = median_seconds(lambda: jax.block_until_ready(compiled(params)), repeats, warmup_after(first))
  row = {'seconds': sec, 'compile_seconds': compile_s, 'first_tokens': out[:, 0]}
  if profile_dir:
    start = time.perf_counter()
    with jax.profiler.trace(str(profile_dir), create_perfetto_trace=True):
      jax.block_until_ready(compiled(params))
    traced = (time.perf_counter() - start) / new_tokens   # per step, the tracer's overhead included
    row['profile'] = summarize_trace(trace_kernel_totals(profile_dir), new_tokens, sec / new_tokens,
                                     traced_seconds=traced)
  return row



def point_costs(spec: mdl.ModelSpec, batch: int, new_tokens: int, seconds: float,
                hw: dict[str, Any]) -> dict[str, Any]:
  """Per-token and per-step time of a generation, the bytes and FLOPs of its mean step, and the
  fractions of the roofline they reach."""
  cost = costs.decoder_step_cost(spec, batch, batch, 0, costs.mean_live(spec.window, new_tokens))
  roof = costs.roofline(cost, hw)
  step = seconds / new_tokens
  bw, peak = costs.ceilings(hw)
  return {'us_per_token': seconds / (batch * new_tokens) * 1e6, 'ms_per_step': step * 1e3,
          'step_bytes': cost['bytes'], 'weight_bytes': cost['weight_bytes'],
          'kv_bytes': cost['self_kv_bytes'], 'step_flops': cost['flops'], 'bound': roof['bound'],
          'roofline_ms_per_step': roof['seconds'] * 1e3,
          'sequential_roofline_ms_per_step': roof['sequential_seconds'] * 1e3,
          'roofline_fraction': roof['seconds'] / step,
          'sequential_roofline_fraction': roof['sequential_seconds'] / step,
          'achieved_GBps': cost['bytes'] / step / 1e9,
          'ceilings': {'GBps': bw / 1e9, 'TFLOPs': peak / 1e12}}


def point_key(p: dict[str, Any]) -> tuple:
  """What identifies an LM decoding point in a file (resume and merge skip one already there)."""
  return (p['system'], p.get('attention_impl'), p['variant'], p['batch'], p['new_tokens'])


def ratios(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """Ours (per attention path) / peer time at each (variant, batch, N) both ran: below 1, ours is
  faster."""
  timed = [p for p in points if 'us_per_token' in p]
  at = lambda p: (p['variant'], p['batch'], p['new_tokens'])  # noqa: E731
  return [{'variant': p['variant'], 'batch': p['batch'], 'new_tokens': p['new_tokens'],
           'peer': p['system'], 'attention_impl': o['attention_impl'],
           'ours_us_per_token': o['us_per_token'], 'peer_us_per_token': p['us_per_token'],
           'ours_over_peer': o['us_per_token'] / p['us_per_token']}
          for o in timed if o['system'] == 'ours'
          for p in timed if p['system'] != 'ours' and at(p) == at(o)]


def lm_setting(size: str, opts: LmDecodeOptions) -> dict[str, Any]:
  dims = {v: {k: getattr(lm_spec(v, size, 1), k) for k in
              ('decoder_layers', 'd_model', 'num_heads', 'num_kv_heads', 'qk_dim', 'v_dim', 'd_ff',
               'vocab_size')} for v in opts.variants}
  return {'size': size, 'dims': dims, 'prompt_tokens': 1, 'eos_masked': True,
          'weights': 'random, bfloat16 (ours and the torch peer share them; HF: its own init)',
          'timed': f'one whole generation, median of {opts.repeats} after warm-up',
          'step_bytes': 'weights + live K/V averaged over the N steps ((N + 1) / 2 positions)',
          'roofline': 'against hardware.ceiling_GBps / ceiling_TFLOPs (hardware.ceiling_basis)',
          'xla_python_client_preallocate': os.environ.get('XLA_PYTHON_CLIENT_PREALLOCATE')}


def _carried(previous: dict[str, Any] | None, setting: dict[str, Any]) -> list[dict[str, Any]]:
  """The points of an earlier run at the same setting (to skip); another setting is refused."""
  if not previous:
    return []
  old = previous.get('setting', {})
  if old.get('size') != setting['size'] or any(
      old.get('dims', {}).get(v, d) != d for v, d in setting['dims'].items()):
    raise ValueError('the output file holds lm_decode points of another setting '
                     f"(size {old.get('size')!r}); choose another --out")
  return list(previous.get('points', []))


def run_lm_decode(size: str, hw: dict[str, Any], opts: LmDecodeOptions, log: Callable[[str], None],
                  block: dict[str, Any], save: Callable[[], None] = lambda: None,
                  previous: dict[str, Any] | None = None, run: int = 0,
                  budget: Budget | None = None) -> dict[str, Any]:
  """Fill `block` (result['lm_decode']) point by point, calling `save` after each. `previous`: the
  lm_decode block of the file being resumed, whose points are kept and not measured again; `run`:
  this run's index in the result's 'runs'; `budget`: stop before a point that would not fit."""
  opts, budget = opts.resolved(size), budget or Budget(None)
  setting = lm_setting(size, opts)
  points = _carried(previous, setting)
  peer_status = peers_lib.status(opts.peers)
  block.update(setting=setting, peers=peer_status, points=points, ratios=ratios(points))
  systems = ['ours'] + [p for p in opts.peers if peer_status[p]['available']]
  for p in opts.peers:
    if not peer_status[p]['available']:
      log(f"bench: lm_decode peer {p}: {peer_status[p]['note']}")
  done = {point_key(p) for p in points}
  for n in opts.new_tokens:
    for variant in opts.variants:
      spec = lm_spec(variant, size, n, opts.attention_impl)
      model, state = mdl.Transformer(spec), {}
      try:
        for batch in opts.batches:
          for system in systems:
            impl = opts.attention_impl if system == 'ours' else None
            if (system, impl, variant, batch, n) in done:
              continue
            if not budget.allows((system, n)):
              log(f'bench: lm_decode: {budget.stopped}')
              return block
            t0 = time.perf_counter()
            row = _measure(system, model, spec, state, batch, n, opts, log)
            budget.record((system, n), t0)
            row = {'system': system, 'attention_impl': impl, 'variant': variant,
                   'label': cfg.ROWS['lm'][variant].label, 'g': spec.num_kv_heads, 'batch': batch,
                   'new_tokens': n, 'run': run, **row}
            if 'seconds' in row:
              row.update(point_costs(spec, batch, n, row['seconds'], hw))
            points.append(row)
            block['ratios'] = ratios(points)
            save()
            _log_point(row, log)
      finally:
        for peer in state.get('peers', {}).values():
          peer.close()
  log(f'bench: lm_decode: all {len(points)} points done')
  return block


def _measure(system: str, model: mdl.Transformer, spec: mdl.ModelSpec, state: dict, batch: int,
             n: int, opts: LmDecodeOptions, log) -> dict[str, Any]:
  """One point's timing row (or {'error': ...}); `state` keeps params, peers and our first tokens
  across the batches of one (variant, N)."""
  if 'params' not in state:
    state['params'] = init_params(model, 0, 8)
  try:
    if system == 'ours':
      trace = (os.path.join(opts.profile_dir, f'lm_kv{spec.num_kv_heads}_b{batch}_n{n}')
               if opts.profile_dir else None)
      row = time_ours(model, state['params'], batch, n, opts.repeats, trace)
    else:
      peers = state.setdefault('peers', {})
      if system not in peers:
        peers[system] = peers_lib.make(system, spec, state['params'])
      row = peers[system].time(batch, n, opts.repeats)
  except Exception as e:  # noqa: BLE001 - a peer's failure is a result; ours only when out of memory
    if system == 'ours' and not out_of_memory(e):
      raise
    log(f'bench: lm_decode {system} B={batch} N={n}: {type(e).__name__}: {str(e)[:200]}')
    return {'error': 'out of memory' if out_of_memory(e) else f'{type(e).__name__}: {str(e)[:300]}'}
  first = row.pop('first_tokens', None)
  if system == 'ours':
    state[('first', batch)] = first
  elif first is not None and ('first', batch) in state:
    # the torch peer carries our weights: its first tokens should be ours up to bf16 rounding
    row['first_token_agreement'] = float(np.mean(np.asarray(first) == state[('first', batch)]))
  return row


def _log_point(row: dict[str, Any], log) -> None:
  what = (f"bench: lm_decode {row['system']:5s} {row['variant']:5s} B={row['batch']:<5} "
          f"N={row['new_tokens']:<5}")
  if 'error' in row:
    log(f"{what} {row['error'][:120]}")
    return
  log(f"{what} {row['us_per_token']:9.3f} us/token {row['ms_per_step']:8.3f} ms/step "
      f"({100 * row['sequential_roofline_fraction']:.0f}% of the sequential roofline)")
  if 'profile' in row:
    prof = row['profile']
    busy = (f"device busy {100 * prof['device_busy_fraction']:.0f}% of the step; "
            if 'device_busy_fraction' in prof else '')
    log(f"{what} profile: {busy}" + '; '.join(
        f"{c} {x['us_per_step']:.1f} us" for c, x in list(prof['categories'].items())[:5]) + ' per step')
