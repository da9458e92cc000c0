"""The uptraining report: converted and from-scratch runs beside their multi-head source, with the
bootstrap against it and the plots over alpha and over decoding time."""

import csv
import json

import pytest

from mqa_repro.report import records, uptrain
from test_tables import fake_row, write_results


def _run(g, kind, init, alpha, bleu):
  r = fake_row('translate', 'mqa' if g == 1 else 'gqa2', 1.6, bleu=bleu)
  r['name'] = f'wmt_{kind}_g{g}_{init}_a{alpha}'
  r['evals']['newstest'] = r['evals']['offline']
  r['variant'] = {'kv_heads': g, 'init': init, 'alpha': alpha,
                  'kind': 'uptrained' if kind == 'uptrain' else 'from scratch'}
  r['uptrain'] = {'source_name': 'wmt_mha_gpu'}
  return r


def test_uptrain_report_tables_bootstrap_and_plots(tmp_path):
  base = fake_row('translate', 'mha', 1.5, bleu=20.0)
  base['name'] = 'wmt_mha_gpu'
  base['evals']['newstest'] = base['evals']['offline']
  # the reproduction's own multi-query rows (2 seeds): a from-scratch reference at N steps
  scratch = [fake_row('translate', 'mqa', 1.7, bleu=16.0), fake_row('translate', 'mqa', 1.9, bleu=17.0, seed=1)]
  for r in scratch:
    r['evals']['newstest'] = r['evals']['offline']
  baseline = write_results(tmp_path / 'h200', [base] + scratch)
  runs = [_run(1, 'uptrain', 'mean', 0.05, 18.0), _run(1, 'uptrain', 'mean', 0.1, 18.5),
          _run(1, 'uptrain', 'random', 0.05, 10.0), _run(2, 'uptrain', 'mean', 0.05, 19.0),
          _run(1, 'scratch', 'scratch', 0.05, 17.0)]
  results = write_results(tmp_path / 'up', runs)
  refs = [f'ein satz nummer {i} mit genug worten .' for i in range(40)]
  records.write_lines_xz(baseline / 'refs' / 'newstest2014.ref.txt.xz', refs)
  records.write_lines_xz(baseline / 'hyps' / 'wmt_mha_gpu' / 'newstest2014.greedy.txt.xz', refs)
  for r in runs:
    hyps = refs if r['variant']['init'] == 'mean' else [f'satz {i}' for i in range(40)]
    records.write_lines_xz(results / 'hyps' / r['name'] / 'newstest2014.greedy.txt.xz', hyps)
  bench = tmp_path / 'bench.json'
  bench.write_text(json.dumps({'hardware': {'device': 'Fake GPU'}, 'sweeps': {'kv_heads': [
      {'x': g, 'us_per_token': t} for g, t in ((1, 1.0), (2, 1.4), (4, 2.0), (8, 3.0))]}}))
  written = uptrain.write(results, baseline, bench, log=lambda m: None)
  md = (results / 'uptrain.md').read_text()
  assert 'multi-head source' in md and 'G=1: 1.00' in md and '-2.00 (p' in md
  ref = next(line for line in md.splitlines() if 'from scratch, reproduction (2 seeds)' in line)
  assert ref.startswith('| 1 |') and '1.800 ± 0.141' in ref and '-3.50 (mean of 2 seeds)' in ref
  rows = {r['run']: r for r in csv.DictReader(open(results / 'uptrain.csv'))}
  assert float(rows['wmt_uptrain_g1_random_a0.05']['p_bleu_newstest2014_vs_mha']) < 0.01
  assert float(rows['wmt_uptrain_g1_mean_a0.05']['p_bleu_newstest2014_vs_mha']) == 1.0   # same hypotheses
  assert rows['wmt_scratch_g1_scratch_a0.05']['greedy_decoder_us_per_token'] == '1.0'
  for png in ('uptrain_alpha.png', 'uptrain_latency.png'):
    assert (results / png) in written and (results / png).read_bytes()[:4] == b'\x89PNG'


def test_the_source_as_the_experiment_evaluated_it_wins_over_the_baseline_folder(tmp_path):
  """A source retrained on another machine is compared with its own record, not an older one."""
  old = fake_row('translate', 'mha', 1.5, bleu=20.0)
  old['name'] = 'wmt_mha_gpu'
  baseline = write_results(tmp_path / 'h200', [old])
  own = fake_row('translate', 'mha', 1.4, bleu=22.0)
  own['name'] = 'wmt_mha_gpu'
  own['variant'] = {'kv_heads': 8, 'init': '–', 'alpha': 0, 'kind': 'multi-head source'}
  runs, base = uptrain.load(write_results(tmp_path / 'up', [own, _run(1, 'uptrain', 'mean', 0.05, 18.0)]),
                            baseline)
  assert base['evals'] == own['evals'] and [r['variant']['kind'] for r in runs] == ['uptrained']
  runs, base = uptrain.load(write_results(tmp_path / 'up2', [_run(1, 'uptrain', 'mean', 0.05, 18.0)]), baseline)
  assert base['evals'] == old['evals']                  # no record of its own: the baseline folder's


def test_runs_converted_from_another_training_of_the_source_are_refused(tmp_path):
  own = fake_row('translate', 'mha', 1.4, bleu=22.0)
  own['name'] = 'wmt_mha_gpu'
  own['variant'] = {'kv_heads': 8, 'init': '–', 'alpha': 0, 'kind': 'multi-head source'}
  own['fingerprint'] = 'aaaa'
  same, other = _run(1, 'uptrain', 'mean', 0.05, 18.0), _run(2, 'uptrain', 'mean', 0.05, 19.0)
  same['uptrain']['source_fingerprint'], other['uptrain']['source_fingerprint'] = 'aaaa', 'bbbb'
  uptrain.load(write_results(tmp_path / 'ok', [own, same]), tmp_path)
  with pytest.raises(ValueError, match=r"wmt_uptrain_g2_mean_a0.05 were not converted from the wmt_mha_gpu"):
    uptrain.load(write_results(tmp_path / 'mixed', [own, same, other]), tmp_path)


def test_decoder_time_per_g_prefers_whole_greedy_decodes_to_the_sweep():
  from mqa_repro.report.uptrain import latency_by_g
  sweep = {'kv_heads': [{'x': g, 'us_per_token': t, 'batch': 1024, 'live': 64, 'attention_impl': 'pallas'}
                        for g, t in ((1, 1.0), (8, 2.0))]}
  bench = {'hardware': {'device': 'NVIDIA H200'}, 'sweeps': sweep,
           'table2': [{'variant': 'mha', 'g': 8, 'greedy_decoder_us_per_token': 2.2}]}
  latency, source = latency_by_g(bench)          # one Table 2 row is not a comparison: the sweep
  assert latency == {1: 1.0, 8: 2.0} and 'kv-heads sweep' in source and '64 cached' in source
  bench['table2'] += [{'variant': 'mqa', 'g': 1, 'greedy_decoder_us_per_token': 0.9},
                      {'variant': 'mqa_local', 'g': 1, 'greedy_decoder_us_per_token': 0.5}]
  bench['setting'] = {'batch': 1024, 'source_len': 128, 'attention_impl': 'pallas'}
  latency, source = latency_by_g(bench)
  assert latency == {8: 2.2, 1: 0.9} and "Table 2's greedy decoder" in source and 'NVIDIA H200' in source
  assert latency_by_g(None) == ({}, '')


def test_two_trainings_of_the_source_each_compared_with_their_own(tmp_path):
  """A source retrained on a fresh machine has its own folder; one report shows both, every converted
  run's Δ and bootstrap p against the source it was converted from."""
  refs = [f'ein satz nummer {i} mit genug worten .' for i in range(40)]
  baseline = write_results(tmp_path / 'h200', [])
  records.write_lines_xz(baseline / 'refs' / 'newstest2014.ref.txt.xz', refs)
  folders = []
  for name, fp, source_bleu, run_bleu, alpha in (('up', 'aaaa1111bbbb', 20.0, 18.0, 0.05),
                                                  ('up2', 'cccc2222dddd', 21.0, 18.5, 0.1)):
    own = fake_row('translate', 'mha', 1.5, bleu=source_bleu)
    own['name'] = 'wmt_mha_gpu'
    own['evals']['newstest'] = own['evals']['offline']
    own['variant'] = {'kv_heads': 8, 'init': '–', 'alpha': 0, 'kind': 'multi-head source'}
    own['fingerprint'] = fp
    run = _run(1, 'uptrain', 'mean', alpha, run_bleu)
    run['uptrain']['source_fingerprint'] = fp
    folder = write_results(tmp_path / name, [own, run])
    records.write_lines_xz(folder / 'hyps' / 'wmt_mha_gpu' / 'newstest2014.greedy.txt.xz', refs)
    records.write_lines_xz(folder / 'hyps' / run['name'] / 'newstest2014.greedy.txt.xz', refs)
    folders.append(folder)
  uptrain.write(folders[0], baseline, None, log=lambda m: None, more=folders[1:])
  md = (folders[0] / 'uptrain.md').read_text()
  assert '2 trainings of it (up (aaaa1111), up2 (cccc2222)' in md
  line = next(x for x in md.splitlines() if x.startswith('| up2 (cccc2222) | 1 | uptrained'))
  assert '-2.50 (p' in line                       # 18.5 against its own source's 21.0, not 20.0
  assert next(x for x in md.splitlines() if x.startswith('| up (aaaa1111) | 1 |')).count('-2.00 (p') == 1
  rows = {r['run'] + r['source']: r for r in csv.DictReader(open(folders[0] / 'uptrain.csv'))}
  assert set(rows) == {'wmt_mha_gpuup (aaaa1111)', 'wmt_uptrain_g1_mean_a0.05up (aaaa1111)',
                       'wmt_mha_gpuup2 (cccc2222)', 'wmt_uptrain_g1_mean_a0.1up2 (cccc2222)'}
  assert (folders[0] / 'uptrain_alpha.png').read_bytes()[:4] == b'\x89PNG'
  assert not (folders[1] / 'uptrain.md').exists()   # one report, in --results
  assert uptrain.main(['--results', str(folders[0]), '--baseline', str(baseline),
                       '--more', str(tmp_path / 'nowhere')]) == 2   # a folder without runs: a clear error
