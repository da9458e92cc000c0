"""bench: the roofline's byte/FLOP accounting, and the CLI at tiny size on CPU writing valid JSON that
the tables generator reads."""

import json
import math
import sys
from pathlib import Path

import pytest

from mqa_repro import bench, cli
from mqa_repro.report import speed
from mqa_repro.report.format import fmt_sig

HW = {'copy_GBps': 1000.0, 'matmul_TFLOPs': 100.0}
REPO = Path(__file__).resolve().parent.parent


def test_kv_bytes_scale_with_kv_heads_and_only_live_slots_count():
  mha, mqa = bench.bench_spec('mha', 'paper'), bench.bench_spec('mqa', 'paper')
  assert (mha.num_heads, mha.num_kv_heads, mqa.num_kv_heads) == (8, 8, 1)
  a = bench.decoder_step_cost(mha, 1024, 1024, 128, live=64)
  b = bench.decoder_step_cost(mqa, 1024, 1024, 128, live=64)
  # K/V traffic is proportional to the kv heads: h/g = 8 times less for multi-query
  assert a['self_kv_bytes'] == 8 * b['self_kv_bytes'] and a['cross_kv_bytes'] == 8 * b['cross_kv_bytes']
  # one position of one layer's K and V (H = V = 128, bf16) per hypothesis and kv head
  assert b['self_kv_bytes'] == 1024 * 64 * 1 * (128 + 128) * 2 * mqa.decoder_layers
  half = bench.decoder_step_cost(mqa, 1024, 1024, 128, live=32)
  assert half['self_kv_bytes'] * 2 == b['self_kv_bytes']
  assert half['weight_bytes'] == b['weight_bytes'] and half['cross_kv_bytes'] == b['cross_kv_bytes']
  # beam search: 4 hypotheses per sentence read the sentence's memory once
  beam = bench.decoder_step_cost(mqa, 1024, 256, 128, live=64)
  assert beam['cross_kv_bytes'] * 4 == b['cross_kv_bytes']


def test_roofline_and_its_sequential_bound():
  cost = {'bytes': 3e9, 'weight_bytes': 1e9, 'self_kv_bytes': 1e9, 'cross_kv_bytes': 1e9,
          'flops': 2e11 + 1e9, 'dense_flops': 2e11, 'attention_flops': 1e9}
  r = bench.roofline(cost, HW)
  # whole step: max(3 ms of bytes, 2.01 ms of math); sequential: dense 2 ms (math) + K/V 2 ms (bytes)
  assert r['bound'] == 'memory' and math.isclose(r['seconds'], 3e-3)
  assert math.isclose(r['sequential_seconds'], 2e-3 + 2e-3)
  assert r['seconds'] <= r['sequential_seconds'] <= r['memory_seconds'] + r['compute_seconds']


def test_paper_memory_arithmetic_ratios():
  # PAPER.md section 3 at d = 1024, h = 8, n = 128, b = 1024
  r = bench.paper_ratio(bench.bench_spec('mha', 'paper'), batch=1024, n=128)
  assert r['multi_head'] == pytest.approx(128 / 1024 + 1 / 1024)
  assert r['multi_query'] == pytest.approx(1 / 1024 + 128 / (1024 * 8) + 1 / 1024)


def bench_tiny(workdir, data):
  # one point per sweep: each new model shape costs an initialisation and a compile
  return [sys.executable, '-m', 'mqa_repro.cli', 'bench', '--size', 'tiny', '--variants', 'mqa',
          '--lengths', '8', '--batches', '2', '--kv-heads', '2', '--out',
          str(workdir / 'bench.json')], dict(cwd=REPO)


@pytest.mark.slow
@pytest.mark.background(job=bench_tiny)
def test_bench_cli_tiny_writes_valid_json_for_the_tables(background, tmp_path):
  workdir, _ = background.succeeded(bench_tiny)
  result = json.loads((workdir / 'bench.json').read_text())
  prov = result['provenance']
  for key in ('device_kind', 'versions', 'git_commit', 'git_dirty', 'date_utc', 'command'):
    assert key in prov
  assert {'jax', 'flax'} <= set(prov['versions'])
  assert '--size tiny' in prov['command']
  env = json.loads((workdir / 'environment.json').read_text())    # once beside the results
  assert prov['environment'] == env['id'] and 'jaxlib' in env['dependencies']
  assert result['hardware']['copy_GBps'] > 0 and result['hardware']['matmul_TFLOPs'] > 0
  assert set(result['hardware']['ceiling_basis']) == {'bandwidth', 'matmul'}  # no datasheet: measured
  assert result['hardware']['ceiling_GBps'] == result['hardware']['copy_GBps']
  [row] = result['table2']
  assert row['variant'] == 'mqa' and row['g'] == 1
  for key in ('greedy_encoder_us_per_token', 'greedy_decoder_us_per_token', 'beam_decoder_us_per_token',
              'beam_decoder_us_per_hypothesis', 'train_us_per_token', 'greedy_roofline_fraction',
              'greedy_sequential_roofline_fraction', 'beam_roofline_fraction'):
    assert math.isfinite(row[key]) and row[key] > 0, key
  assert row['greedy_sequential_roofline_us_per_token'] >= row['greedy_roofline_us_per_token']
  sweeps = result['sweeps']
  assert [p['x'] for p in sweeps['length']] == [8]
  assert [p['x'] for p in sweeps['batch']] == [2]
  assert [p['x'] for p in sweeps['kv_heads']] == [2] and sweeps['kv_heads'][0]['variant'] == 'g2'
  assert all(p['us_per_token'] > 0 and p['roofline_us_per_token'] > 0 for k in sweeps for p in sweeps[k])
  # each sweep point names its shapes, which the plot and table print
  assert all(p['live'] == p['x'] for p in sweeps['length'])
  assert all({'batch', 'live', 'source_len', 'attention_impl', 'dtype'} <= set(p) for k in sweeps for p in sweeps[k])
  assert [p['batch'] for p in sweeps['batch']] == [2]
  setting, lines, csv = speed.table2(result, tmp_path)
  assert any(fmt_sig(row['greedy_decoder_us_per_token']) in l for l in lines)  # our number
  assert any('CPU: pipeline check, not a speed result' in l for l in setting)   # a CPU run says so
  assert not any('46.0' in l for l in lines)                                    # no TPUv2 numbers
  assert csv.is_file()


def bench_kernels_tiny(workdir, data):
  return [sys.executable, '-m', 'mqa_repro.cli', 'bench', '--size', 'tiny', '--kernels', '--out',
          str(workdir / 'kernels.json')], dict(cwd=REPO)


@pytest.mark.background(job=bench_kernels_tiny)
def test_bench_kernels_tiny_times_xla_and_the_kernel(background):
  workdir, _ = background.succeeded(bench_kernels_tiny)
  out = workdir / 'kernels.json'
  rows = json.loads(out.read_text())['kernels']
  assert {r['impl'] for r in rows} == {'xla', 'pallas'}
  assert {r['case'] for r in rows} == {c[0] for c in bench.KERNEL_CASES['tiny']}
  assert all(r['us'] > 0 and r['GBps'] > 0 for r in rows)
  assert 'table2' not in json.loads(out.read_text())  # --kernels runs the microbenchmark alone
  assert all(r['kv_copies'] == 1 for r in rows)       # tiny: no L2 to leave


def test_kernel_bench_rotates_over_enough_kv_copies_to_leave_l2():
  from mqa_repro.bench import kernels
  # the paper's multi-query self-attention case: K and V of 1024 rows x 128 slots x 128 dims, 64 MiB
  # a copy, so 4 copies reach 256 MiB; multi-head's 512 MiB cache is past L2 on its own
  assert kernels.kv_copies(kernels.COLD_BYTES, 1024, 128, 1, 128) == 4
  assert kernels.kv_copies(kernels.COLD_BYTES, 1024, 128, 8, 128) == 1
  assert kernels.kv_copies(0, 4, 16, 2, 16) == 1 and kernels.kv_copies(20 << 10, 4, 16, 2, 16) == 3


def test_bad_sweep_points_name_the_flag(capsys):
  with pytest.raises(SystemExit):
    cli.main(['bench', '--size', 'tiny', '--lengths', '8,x'])
  assert '--lengths' in capsys.readouterr().err


def test_trace_summary_groups_kernels_by_what_they_do():
  totals = {'nvjet_sm90_tst_128x128_64x6_1x2_h_bz_NNT': 600.0, 'gemm_fusion_dot_391': 200.0,
            'mqa_decode_attention': 100.0, 'input_reduce_fusion_1': 60.0, 'loop_add_fusion': 40.0}
  summary = bench.summarize_trace(totals, per=2, wall_seconds=1e-3)
  assert summary['categories']['matmul']['us_per_step'] == pytest.approx(400.0)
  assert summary['categories']['attention kernel']['us_per_step'] == pytest.approx(50.0)
  assert summary['categories']['reduce fusion']['us_per_step'] == pytest.approx(30.0)
  assert summary['categories']['elementwise fusion']['us_per_step'] == pytest.approx(20.0)
  assert summary['device_busy_fraction'] == pytest.approx(0.5)  # 500 µs of kernels in a 1 ms step
  traced = bench.summarize_trace(totals, per=2, wall_seconds=1e-3, traced_seconds=2e-2)
  # the traced step (the tracer's overhead) is kept beside, never the denominator
  assert traced['device_busy_fraction'] == pytest.approx(0.5)
  assert traced['traced_wall_us_per_step'] == pytest.approx(2e4)
  assert summary['kernels'][0]['kernel'].startswith('nvjet') and summary['kernels'][0]['share'] == 0.6
  host = bench.summarize_trace({'$python frame': 10.0, bench.HOST_EVENTS: 0.0}, per=1, wall_seconds=1.0)
  assert 'device_busy_fraction' not in host  # host events are not device time


def bench_train_profile_tiny(workdir, data):
  return [sys.executable, '-m', 'mqa_repro.cli', 'bench', '--size', 'tiny', '--variants', 'mqa',
          '--parts', 'train', '--no-sweeps', '--profile', str(workdir / 'trace'), '--out',
          str(workdir / 'bench.json')], dict(cwd=REPO)


@pytest.mark.background(job=bench_train_profile_tiny)
def test_bench_train_profile_tiny(background):
  workdir, _ = background.succeeded(bench_train_profile_tiny)
  out = workdir / 'bench.json'
  [row] = json.loads(out.read_text())['table2']
  assert row['train_profile']['kernels'] and row['train_profile']['device_us_per_step'] > 0
  assert 'profiles' not in json.loads(out.read_text())  # no greedy part, no greedy profile


def test_bad_train_override_names_the_key_before_timing(capsys):
  with pytest.raises(SystemExit):
    cli.main(['bench', '--size', 'tiny', '--parts', 'train', '--config.model.nope=1'])
  assert 'nope' in capsys.readouterr().err


def test_resume_keeps_table2_rows_of_the_same_setting(tmp_path):
  out = tmp_path / 'bench.json'
  setting = {'size': 'tiny', **bench.SETTINGS['tiny'], 'attention_impl': 'xla', 'beam_reorder': 'prefix',
             'parts': ['greedy']}
  row = {'variant': 'mqa', 'greedy_decoder_us_per_token': 1.0, 'run': 0}
  out.write_text(json.dumps({'setting': setting, 'table2': [row], 'runs': [{'command': 'before'}]}))
  args = ['bench', '--size', 'tiny', '--variants', 'mqa', '--parts', 'greedy', '--no-sweeps',
          '--no-torch-probes', '--resume', '--out', str(out)]
  assert cli.main(args) == 0
  result = json.loads(out.read_text())
  assert result['table2'] == [row] and len(result['runs']) == 2   # nothing measured again
  # parts a resumed run does not measure stay: one file collects a benchmark part by part
  kept = {'kernels': [{'case': 'mha self'}], 'sweeps': {'length': [1]}, 'lm_decode': {'points': [2]}}
  out.write_text(json.dumps({**result, **kept}))
  assert cli.main(args) == 0
  result = json.loads(out.read_text())
  assert {k: result[k] for k in kept} == kept and result['table2'] == [row]
  with pytest.raises(ValueError, match='another setting'):
    cli.main(args[:-3] + ['--attention-impl', 'pallas', '--resume', '--out', str(out)])


def test_a_resumed_run_on_the_same_device_reuses_its_ceilings(tmp_path, monkeypatch, capsys):
  from mqa_repro.bench import suite
  out = tmp_path / 'bench.json'
  suite.run_benchmark('tiny', kernels=False, table2=False, sweeps=False, out=out, torch_probes=False)
  first = json.loads(out.read_text())['hardware']

  def probed(*a, **k):
    raise AssertionError('ceilings probed again')
  monkeypatch.setattr(suite, 'measure_hardware', probed)
  suite.run_benchmark('tiny', kernels=False, table2=False, sweeps=False, out=out, torch_probes=False,
                      resume=True)
  after = json.loads(out.read_text())
  assert after['hardware'] == first and after['runs'][-1]['hardware']['ceiling_GBps'] == \
      first['ceiling_GBps']
  assert 'not probed again' in capsys.readouterr().out
  # another device (or asking for torch's probes the first run left out) probes afresh
  for change in ({'device': 'another'}, {}):
    out.write_text(json.dumps({**after, 'hardware': {**first, **change}}))
    with pytest.raises(AssertionError, match='probed again'):
      suite.run_benchmark('tiny', kernels=False, table2=False, sweeps=False, out=out,
                          torch_probes=not change, resume=True)


def test_a_resumed_profiled_run_traces_only_the_variants_not_profiled_yet(tmp_path, monkeypatch):
  from mqa_repro.bench import suite
  out = tmp_path / 'bench.json'
  setting = {'size': 'tiny', **bench.SETTINGS['tiny'], 'attention_impl': 'xla', 'beam_reorder': 'prefix',
             'parts': ['greedy']}
  kept = [{'kernel': 'fusion', 'category': 'elementwise fusion', 'us_per_step': 1.0}]
  out.write_text(json.dumps({'setting': setting, 'runs': [{'command': 'a'}], 'profiles': {'mha': kept},
                             'table2': [{'variant': v, 'run': 0} for v in ('mha', 'mqa')]}))
  traced = []

  def profile(v, size, out_dir, kind, **kw):
    traced.append((v, kind))
    return {'kernels': [{'kernel': v}], 'categories': {}}
  monkeypatch.setattr(suite, 'profile_decode', profile)
  suite.run_benchmark('tiny', ['mha', 'mqa'], sweeps=False, out=out, torch_probes=False,
                      parts=['greedy'], profile_dir=str(tmp_path / 'trace'), resume=True)
  assert traced == [('mqa', 'greedy')]
  assert json.loads(out.read_text())['profiles'] == {
      'mha': kept, 'mqa': {'kernels': [{'kernel': 'mqa'}], 'categories': {}}}


def test_a_resumed_run_cut_inside_a_part_keeps_every_part_measured_before(tmp_path, monkeypatch):
  from mqa_repro.bench import kernels, suite
  out = tmp_path / 'bench.json'
  setting = {'size': 'tiny', **bench.SETTINGS['tiny'], 'attention_impl': 'xla', 'beam_reorder': 'prefix',
             'parts': ['greedy']}
  before = {'setting': setting, 'table2': [{'variant': 'mqa', 'run': 0}], 'runs': [{'command': 'a'}],
            'lm_decode': {'points': [{'system': 'ours'}]}, 'sweeps': {'length': [], 'batch': [],
                                                                        'kv_heads': []}}
  out.write_text(json.dumps(before))

  def killed(size, hw, log, rows, save, budget):   # a command's time limit, after one timing
    rows.append({'case': 'mha self', 'impl': 'xla', 'tuning': None})
    save()
    raise KeyboardInterrupt
  monkeypatch.setattr(kernels, 'kernel_bench', killed)
  with pytest.raises(KeyboardInterrupt):
    suite.run_benchmark('tiny', kernels=True, table2=False, sweeps=False, out=out, torch_probes=False,
                        resume=True)
  after = json.loads(out.read_text())
  assert {k: after[k] for k in ('table2', 'lm_decode', 'sweeps', 'setting')} == \
      {k: before[k] for k in ('table2', 'lm_decode', 'sweeps', 'setting')}
  assert after['kernels'] == [{'case': 'mha self', 'impl': 'xla', 'tuning': None}]
  assert len(after['runs']) == 2


def test_kernel_bench_times_only_what_is_missing_and_within_its_budget(monkeypatch):
  from mqa_repro.bench import kernels
  from mqa_repro.bench.timing import Budget

  def untimed(*a, **k):
    raise AssertionError('timed again')
  monkeypatch.setattr(kernels, 'median_time', untimed)
  done = [{'case': c[0], 'impl': impl, 'tuning': t}
          for c in kernels.KERNEL_CASES['tiny']
          for impl, t in [('xla', None)] + [('pallas', t) for t in kernels.kernel_tunings('tiny', c[2] * c[3])]]
  assert kernels.kernel_bench('tiny', HW, print, rows=list(done)) == done   # nothing left to time
  logged = []
  assert kernels.kernel_bench('tiny', HW, logged.append, rows=[], budget=Budget(1e-9)) == []
  assert 'time budget' in logged[-1]


def test_sweep_resumes_only_points_of_its_attention_implementation(monkeypatch):
  from mqa_repro.bench import sweeps

  def untimed(*a, **k):
    raise AssertionError('timed again')
  monkeypatch.setattr(sweeps, 'time_steps', untimed)
  sw = sweeps.SWEEPS['tiny']
  done = {'length': [{'variant': 'mqa', 'x': x, 'attention_impl': 'xla'} for x in sw['length']],
          'batch': [{'variant': 'mqa', 'x': x, 'attention_impl': 'xla'} for x in sw['batch']],
          'kv_heads': [{'variant': f'g{g}', 'x': g, 'attention_impl': 'xla'} for g in sw['kv_heads']]}
  assert sweeps.sweep('tiny', HW, ['mqa'], print, json.loads(json.dumps(done))) == done
  with pytest.raises(ValueError, match='--attention-impl xla, not pallas'):
    sweeps.sweep('tiny', HW, ['mqa'], print, done, attention_impl='pallas')


def test_merging_benchmark_records_adds_what_is_missing_with_its_run():
  from mqa_repro.bench.merge import merge
  setting = {'size': 'tiny', 'parts': ['greedy']}
  into = {'runs': [{'command': 'a', 'date_utc': '1'}], 'hardware': {}, 'setting': {'parts': []},
          'kernels': [{'case': 'mha self', 'impl': 'xla', 'tuning': None, 'us': 1.0}],
          'sweeps': {'length': [{'variant': 'mha', 'x': 8, 'attention_impl': 'xla', 'us': 2.0}]}}
  source = {'runs': [{'command': 'b', 'date_utc': '0'}, {'command': 'a', 'date_utc': '1'}],
            'hardware': {}, 'setting': setting, 'table2': [{'variant': 'mqa', 'run': 0}],
            'kernels': [{'case': 'mha self', 'impl': 'xla', 'tuning': None, 'us': 9.0},
                        {'case': 'mha self', 'impl': 'pallas', 'tuning': {'block_k': 8}, 'us': 3.0}],
            'sweeps': {'length': [{'variant': 'mha', 'x': 8, 'attention_impl': 'xla', 'us': 9.0},
                                  {'variant': 'mha', 'x': 16, 'attention_impl': 'xla', 'us': 4.0}]}}
  added = merge(into, source, 'b.json')
  assert len(added) == 3
  assert into['table2'] == [{'variant': 'mqa', 'run': 1}]   # its run, renumbered in the target
  assert into['runs'][1]['command'] == 'b' and len(into['runs']) == 2
  assert into['setting'] == setting                          # the Table 2 rows' setting
  assert [k['us'] for k in into['kernels']] == [1.0, 3.0]   # what the target had is kept
  assert [p['us'] for p in into['sweeps']['length']] == [2.0, 4.0]
  assert merge(into, source, 'b.json') == []                 # nothing twice
  with pytest.raises(ValueError, match='c.json.*another setting'):
    merge(into, {**source, 'setting': {'size': 'paper'}, 'table2': [{'variant': 'mha', 'run': 0}]},
          'c.json')
  with pytest.raises(ValueError, match="d.json: a kernels entry without 'impl'"):
    merge(into, {**source, 'kernels': [{'case': 'x'}]}, 'd.json')
  with pytest.raises(ValueError, match='e.json: not a benchmark record'):
    merge(into, {'table2': []}, 'e.json')


def test_tables_set_fused_training_beside_the_einsums_and_say_where_an_lm_step_goes():
  gpu = {'hardware': {'device': 'NVIDIA H200', 'platform': 'gpu'}, 'provenance': {'platform': 'gpu'}}
  bench_rec = {**gpu, 'table2': [{'variant': 'mha', 'train_us_per_token': 4.0,
                                  'train_mfu_vs_datasheet': 0.32}]}
  fused = {**gpu, 'table2': [{'variant': 'mha', 'train_us_per_token': 3.0, 'train_mfu_vs_datasheet': 0.43}]}
  [line] = speed.train_fused_lines(bench_rec, fused)
  assert "mha 3.00 µs/token (43% MFU) against the einsums' 4.00 (32%)" in line and 'CPU' not in line
  assert speed.train_fused_lines(bench_rec, None) == []
  t2 = {**gpu, 'table2': [{'variant': 'mha', 'greedy_decoder_ms_per_step': 2.0, 'beam_batch': 4,
                           'beam_decoder_us_per_token': 500.0, 'train_step_s': 0.1,
                           'train_profile': {'device_us_per_step': 9e4, 'matmul_TFLOPs': 700.0,
                                             'categories': {'matmul': {'us_per_step': 6e4}}}}],
        # an older greedy profile kept only its top kernels: their sum per kind, marked as such
        'profiles': {'mha': [{'kernel': 'a', 'category': 'matmul', 'us_per_step': 600.0},
                             {'kernel': 'b', 'category': 'matmul', 'us_per_step': 400.0},
                             {'kernel': 'c', 'category': 'reduce fusion', 'us_per_step': 500.0}]},
        'beam_profiles': {'mha': {'device_us_per_step': 1800.0, 'categories': {
            'other': {'us_per_step': 1000.0}, 'matmul': {'us_per_step': 800.0}}}}}
  md = '\n'.join(speed.table2_profile_table(t2))
  assert '| mha | greedy step | 2000 | 1500 (top kernels) | 75% | matmul 1000; reduce fusion 500 |' in md
  assert '| mha | beam-4 step | 2000 | 1800 | 90% | other 1000; matmul 800 |' in md
  assert '| mha | training step | 100000 | 90000 | 90% | matmul 60000 (matmuls at 700 TFLOP/s) |' in md
  assert speed.table2_profile_table({**gpu, 'table2': [{'variant': 'mha'}]}) == []
  # the busy share is the device time over the timed step (80 of 320 µs), whatever a file stored
  prof = {'device_us_per_step': 80.0, 'device_busy_fraction': 0.02,
          'categories': {'matmul': {'us_per_step': 50.0}, 'attention kernel': {'us_per_step': 20.0},
                         'copy/memset': {'us_per_step': 6.0}, 'other': {'us_per_step': 4.0}}}
  record = {**gpu, 'lm_decode': {'points': [{'variant': 'mqa', 'new_tokens': 128, 'batch': 1,
                                              'ms_per_step': 0.32, 'profile': prof}]}}
  md = '\n'.join(speed.lm_profile_table(record))
  assert '| mqa | 128 | 1 | 320 | 80.0 | 25% | matmul 50.0; attention kernel 20.0; copy/memset 6.00 |' in md
  assert speed.lm_profile_table({'lm_decode': {'points': [{'variant': 'mqa'}]}}) == []


def test_resuming_a_malformed_file_names_it_before_measuring_anything(tmp_path, monkeypatch):
  from mqa_repro.bench import suite

  def probed(*a, **k):
    raise AssertionError('the ceilings were probed first')
  monkeypatch.setattr(suite, 'measure_hardware', probed)
  out = tmp_path / 'bench.json'
  out.write_text('{"table2": [')
  with pytest.raises(ValueError, match=f'{out}: not a readable JSON file'):
    cli.main(['bench', '--size', 'tiny', '--kernels', '--resume', '--out', str(out)])
  assert out.read_text() == '{"table2": ['   # left as it was
