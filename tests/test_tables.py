"""tables: fake results JSON + a fake bench.json -> tables.md / CSV / PNG, ours beside the paper's."""

import csv
import json
from pathlib import Path

import pytest

from mqa_repro import cli
from mqa_repro import config as cfg
from mqa_repro import costs
from mqa_repro.report import records, tables
from mqa_repro.report.format import fmt_sig

PROVENANCE = {'preset': 'smoke', 'command': 'mqa-repro reproduce --preset smoke', 'git_commit': 'abc1234def',
              'git_dirty': False, 'date_utc': '2026-01-02T03:04:05+00:00', 'device_kind': 'cpu',
              'platform': 'cpu', 'device_count': 1, 'versions': {'jax': '0.0.test'}}


def _bleu(score):
  return {tok: {'score': score, 'signature': f'nrefs:1|case:mixed|eff:no|tok:{tok}|smooth:exp|version:x'}
          for tok in ('intl', '13a')}


def fake_row(task, row, ln_ppl, bleu=None, word_ppl=None, seed=0):
  """A run result with the fields reproduce.run_record writes."""
  c = cfg.row_config(task, row, 'tiny')
  m = c.model
  result = {
      'name': c.name + (f'_seed{seed}' if seed else ''), 'task': task, 'row': row, 'seed': seed,
      'label': c.label, 'in_paper': True, 'size': 'tiny',
      'model': {'h': m.num_heads, 'g': m.num_kv_heads, 'd_k': m.qk_dim, 'd_v': m.v_dim,
                'd_model': m.d_model, 'd_ff': m.d_ff, 'window': m.window,
                'layers': [m.encoder_layers, m.decoder_layers], 'vocab_size': m.vocab_size},
      'params': costs.param_count(m, task), 'paper_params': 211_000_000,
      'train': {'steps': 30, 'batch_size': 16, 'max_length': 64, 'final_loss': 3.0, 'final_nll': 2.9,
                'loss_curve': [[1, 6.9], [10, 5.0], [20, 4.0], [30, 3.0]],
                'nll_curve': [[1, 6.8], [30, 2.9]], 'eval_curve': [[10, ln_ppl + 1], [30, ln_ppl]],
                'recipe': {'learning_rate': 0.1}, 'dropout': [0.2, 0.1, 0.1]},
      'data': {'source': 'offline', 'vocab': 'vocab.model', 'max_train_examples': 60000,
               'eval_sentences_limit': 300},
      'provenance': PROVENANCE, 'wall_seconds': {'total': 1.0},
  }
  if task == 'translate':
    result['evals'] = {'offline': {'description': 'offline corpus held-out dev / test',
                                   'dev': {'name': 'offline dev', 'sentences': 300, 'scored_sentences': 290,
                                           'ln_ppl': ln_ppl, 'bleu': {'greedy': _bleu(bleu)}},
                                   'test': {'name': 'offline test', 'sentences': 300,
                                            'bleu': {'greedy': _bleu(bleu + 1), 'beam4': _bleu(bleu + 2)},
                                            'chrf': {'greedy': {'score': 30.0 + bleu}}}}}
  else:
    result['evals'] = {'offline': {'description': 'offline corpus held-out dev',
                                   'dev': {'name': 'offline dev', 'sentences': 300, 'ln_ppl': ln_ppl,
                                           'word_ppl': word_ppl, 'words': 5000}}}
  return result


def fake_bench(variants=('mha', 'mqa')):
  table2 = [{'variant': v, 'label': cfg.ROWS['translate'][v].label, 'train_us_per_token': 0.5,
             'greedy_encoder_us_per_token': 0.1, 'greedy_decoder_us_per_token': 2.0 if v == 'mha' else 0.25,
             'beam_encoder_us_per_token': 0.1, 'beam_decoder_us_per_token': 8.0 if v == 'mha' else 1.0,
             'greedy_roofline_fraction': 0.8, 'beam_roofline_fraction': 0.7} for v in variants]
  sweep = lambda xs: [{'variant': v, 'x': x, 'us_per_token': 0.01 * x * (8 if v == 'mha' else 1),
                       'roofline_us_per_token': 0.008 * x * (8 if v == 'mha' else 1)}
                      for v in variants for x in xs]
  return {'provenance': {'device': 'Fake GPU', 'git_commit': 'abc1234', 'jax': '0.0.test',
                         'date_utc': '2026-01-02T00:00:00+00:00'},
          'setting': {'size': 'paper', 'batch': 1024, 'source_len': 128, 'target_len': 128, 'beam': 4},
          'hardware': {'device': 'Fake GPU', 'platform': 'gpu', 'copy_GBps': 2670.0, 'matmul_TFLOPs': 644.0},
          'table2': table2,
          'sweeps': {'length': sweep([128, 256, 512]), 'batch': sweep([1, 8, 64]),
                     'kv_heads': sweep([1, 2, 8])}}


def write_results(root: Path, rows, bench=None) -> Path:
  (root / 'rows').mkdir(parents=True)
  for r in rows:
    (root / 'rows' / f"{r['name']}.json").write_text(json.dumps(r))
  if bench is not None:
    (root / 'bench.json').write_text(json.dumps(bench))
  return root


def test_tables_ours_beside_paper_with_seeds(tmp_path):
  rows = [fake_row('translate', 'mha', 1.50, bleu=3.0), fake_row('translate', 'mha', 1.54, bleu=3.5, seed=1),
          fake_row('translate', 'mqa', 1.60, bleu=3.0), fake_row('lm', 'mha', 4.1, word_ppl=123.4),
          fake_row('lm', 'mqa', 4.2, word_ppl=130.0)]
  results = write_results(tmp_path / 'smoke', rows, fake_bench())
  written = tables.write_tables(results, log=lambda m: None)
  md = (results / 'tables.md').read_text()

  assert '1.520 ± 0.028 (1.424)' in md       # WMT multi-head ln(PPL): two seeds, mean ± sample std
  assert '3.25 ± 0.35 (26.7)' in md           # BLEU dev
  assert '4.25 ± 0.35 (27.7)' in md and '5.25 ± 0.35 (28.4)' in md   # test greedy, beam 4
  assert '1.600 (1.439)' in md                # one seed: no spread
  assert '123.4 (29.9)' in md and '130.0 (30.2)' in md   # LM per-word perplexity
  assert '+0.080' in md and 'multi-query' in md          # difference from multi-head
  # a one-seed row is judged by multi-head's seed spread: s.e. 0.028 * sqrt(1 + 1/2) = 0.035
  assert "multi-query +0.080 ± 0.035 (one seed: worse beyond 2 s.e. of multi-head's seed spread)" in md
  # paper rows not run are named, never shown as numbers
  assert 'not run here' in md and 'multi-head local' in md and 'not run (1.427)' not in md
  # Table 2 from bench.json (an accelerator): ours with device, batch and lengths; the paper's in a
  # table of its own; the decoder ratio beside the paper's
  assert '| multi-head | Fake GPU | 1024 / ' in md and '| 128 / 128 |' in md and '| 0.100 + 2.00 |' in md
  assert "The paper's Table 2, for reference" in md and '| multi-head | 13.2 | 1.70 + 46.0 | 2.00 + 203 |' in md
  assert '8.0× (paper, TPUv2: 12.1×)' in md and 'Fake GPU' in md and 'pipeline check' not in md
  # the setting above each table comes from provenance
  assert 'abc1234def' in md and '1 × cpu' in md and 'tok:intl' in md

  t1 = list(csv.DictReader(open(results / 'table1_offline.csv')))
  assert [r['row'] for r in t1] == ['mha', 'mqa']
  assert t1[0]['seeds'] == '2' and abs(float(t1[0]['ln_ppl_dev_mean']) - 1.52) < 1e-9
  assert float(t1[0]['ln_ppl_dev_paper']) == 1.424 and t1[1]['ln_ppl_dev_std'] == ''
  runs = list(csv.DictReader(open(results / 'runs_table1_offline.csv')))
  assert [(r['row'], r['seed']) for r in runs] == [('mha', '0'), ('mha', '1'), ('mqa', '0')]
  t3 = list(csv.DictReader(open(results / 'table3_offline.csv')))
  assert len(t3) == 2 and t3[0]['word_ppl_mean'] == '123.4'
  t2 = list(csv.DictReader(open(results / 'table2.csv')))
  assert [r['variant'] for r in t2] == ['mha', 'mqa']          # the rows measured, no 'not run' rows
  assert t2[0]['device'] == 'Fake GPU' and t2[0]['batch'] == '1024' and t2[0]['source_len'] == '128'
  assert t2[0]['speed_result'] == 'True' and float(t2[0]['greedy_decoder_us_per_token_paper_tpuv2']) == 46.0

  for png in ('quality_wmt.png', 'quality_lm.png', 'learning_curves.png', 'bench_sweeps.png'):
    assert (results / png) in written
    data = (results / png).read_bytes()
    assert len(data) > 5000 and data[:8] == b'\x89PNG\r\n\x1a\n'


def test_compare_verdicts_by_seed_noise():
  from mqa_repro.report.quality import Stat, compare
  base = Stat.of([1.0, 1.2, 1.1])                             # std 0.1
  d, se, verdict = compare(Stat.of([1.3, 1.5, 1.4]), base, lower_is_better=True)
  assert abs(d - 0.3) < 1e-12 and abs(se - (0.02 / 3) ** 0.5) < 1e-12 and verdict == 'worse beyond 2 s.e.'
  assert compare(Stat.of([1.2, 1.0, 1.3]), base, True)[2] == 'within seed noise'
  # one seed: one more draw with the base's spread, s.e. = 0.1 * sqrt(1 + 1/3) = 0.115
  d, se, verdict = compare(Stat.of([1.3]), base, lower_is_better=True)
  assert abs(se - 0.1 * (4 / 3) ** 0.5) < 1e-12 and verdict == "one seed: within multi-head's seed noise"
  assert compare(Stat.of([1.45]), base, lower_is_better=False)[2].startswith('one seed: better beyond')
  d, se, verdict = compare(Stat.of([1.45]), Stat.of([1.1]), lower_is_better=True)   # no spread at all
  assert abs(d - 0.35) < 1e-12 and se is None and verdict == 'one seed'


def test_tables_with_nothing_run_writes_no_empty_files(tmp_path):
  results = tmp_path / 'empty'
  results.mkdir()
  tables.write_tables(results, log=lambda m: None)
  md = (results / 'tables.md').read_text()
  assert md.count('not run') == 2 and 'no bench.json' in md
  assert sorted(p.name for p in results.iterdir()) == ['tables.md']


def test_bootstrap_against_multi_head_from_stored_hypotheses(tmp_path):
  rows = [fake_row('translate', 'mha', 1.5, bleu=3.0), fake_row('translate', 'mqa', 1.6, bleu=2.0),
          fake_row('translate', 'gqa2', 1.55, bleu=2.5)]
  results = write_results(tmp_path / 'r', rows)
  refs = [f'das ist satz nummer {i} und er ist lang genug .' for i in range(60)]
  good = list(refs)
  bad = [f'satz {i} .' for i in range(60)]
  records.write_lines_xz(results / 'refs' / 'offline_test.ref.txt.xz', refs)
  for name, hyps in (('wmt_mha_tiny', good), ('wmt_mqa_tiny', bad), ('wmt_gqa2_tiny', good)):
    records.write_lines_xz(results / 'hyps' / name / 'offline_test.greedy.txt.xz', hyps)
  tables.write_tables(results, log=lambda m: None)
  t1 = {r['row']: r for r in csv.DictReader(open(results / 'table1_offline.csv'))}
  assert float(t1['mqa']['p_bleu_greedy_vs_mha']) < 0.01       # clearly different hypotheses
  assert float(t1['gqa2']['p_bleu_greedy_vs_mha']) == 1.0       # the same hypotheses
  assert t1['mha']['p_bleu_greedy_vs_mha'] == ''
  cached = json.loads((results / 'bootstrap.json').read_text())
  assert len(cached) == 2
  md = (results / 'tables.md').read_text()
  assert 'bs:1000' in md                                        # the bootstrap's signature


def test_extra_rows_and_cli(tmp_path, capsys, monkeypatch):
  rows = [fake_row('translate', 'gqa2', 1.5, bleu=1.0)]
  results = write_results(tmp_path / 'runs' / 'gpu' / 'results', rows)
  assert cli.main(['tables', '--results', str(results)]) == 0
  md = (results / 'tables.md').read_text()
  assert 'grouped-query g=2' in md        # not in the paper: listed after its rows
  assert 'tables.md' in capsys.readouterr().out
  monkeypatch.chdir(tmp_path)
  assert cli.main(['tables', '--preset', 'gpu']) == 0
  assert cli.main(['tables', '--results', str(tmp_path / 'missing')]) == 2
  with pytest.raises(SystemExit):                    # results only: nothing to override
    cli.main(['tables', '--preset', 'gpu', '--config.model.window=4'])


@pytest.mark.parametrize('x,text', [(0.0123456, '0.0123'), (1.234, '1.23'), (46.0, '46.0'), (203.2, '203'),
                                    (None, '–')])
def test_three_significant_digits(x, text):
  assert fmt_sig(x) == text


def _table2_section(md: str) -> str:
  return md[md.index('## Table 2'):md.index('\n## ', md.index('## Table 2') + 1)]


def cpu_bench():
  bench = fake_bench()
  bench['setting'] = {'size': 'tiny', 'batch': 8, 'source_len': 16, 'target_len': 16, 'beam': 4,
                      'beam_batch': 2, 'attention_impl': 'xla'}
  bench['hardware'] = {'device': 'cpu', 'platform': 'cpu', 'copy_GBps': 28.0, 'matmul_TFLOPs': 0.28}
  bench['provenance']['device'] = 'cpu'
  return bench


def test_table2_from_a_cpu_is_a_pipeline_check_without_the_paper_numbers(tmp_path):
  results = write_results(tmp_path / 'cpu', [], cpu_bench())
  tables.write_tables(results, log=lambda m: None)
  md = (results / 'tables.md').read_text()
  t2 = _table2_section(md)
  assert 'CPU pipeline check, not a speed result' in t2.splitlines()[0]
  assert '**CPU: pipeline check, not a speed result.**' in t2
  # no TPUv2 number anywhere in the section: not in our cells, not in a table of its own, not in ratios
  for paper in ('46.0', '203', '13.2', '3.80', '12.1×', 'TPUv2:', "The paper's Table 2"):
    assert paper not in t2, paper
  # every row says its device, batch and lengths
  rows = [line for line in t2.splitlines() if line.startswith('| multi-')]
  assert len(rows) == 2 and all('| cpu | 8 / 2 (× 4) | 16 / 16 |' in r for r in rows)
  t2csv = list(csv.DictReader(open(results / 'table2.csv')))
  assert all(r['speed_result'] == 'False' and r['platform'] == 'cpu' for r in t2csv)
  assert all(r[k] == '' for r in t2csv for k in r if k.endswith('_paper_tpuv2'))
  # the sweeps and their plot are marked the same way
  sweeps = md[md.index('## Speed sweeps'):]
  assert 'CPU: pipeline check, not a speed result' in sweeps


def test_a_record_without_platform_is_not_taken_for_an_accelerator(tmp_path):
  bench = fake_bench()
  del bench['hardware']['platform']
  results = write_results(tmp_path / 'r', [], bench)
  tables.write_tables(results, log=lambda m: None)
  t2 = _table2_section((results / 'tables.md').read_text())
  assert 'not a speed result' in t2 and '46.0' not in t2


def test_self_measured_ceilings_are_said_and_point_to_the_datasheet_fractions(tmp_path):
  bench = fake_bench()
  bench['hardware']['device'] = 'NVIDIA H100 80GB HBM3'
  results = write_results(tmp_path / 'gpu', [], bench)
  (results / 'h100_relabelled.json').write_text(json.dumps({'rows': [
      {'file': 'bench.json', 'variant': 'mha', 'attention_impl': 'xla', 'greedy_us_per_token': 2.0,
       'greedy_fraction': 0.49, 'beam_us_per_token': 8.0, 'beam_fraction': 0.15},
      {'file': 'other.json', 'variant': 'mqa', 'attention_impl': 'xla', 'greedy_us_per_token': 0.3,
       'greedy_fraction': 0.9}]}))
  tables.write_tables(results, log=lambda m: None)
  t2 = _table2_section((results / 'tables.md').read_text())
  assert "this run's own measured ceilings" in t2 and 'datasheet H100: 3350 GB/s' in t2
  assert 'docs/speed.md' in t2 and 'results/gpu/h100_relabelled.json' in t2
  assert '| 0.49 / 0.15 [0.80 / 0.70] |' in t2           # datasheet fraction, own ceilings' in brackets
  assert '| – / – [0.80 / 0.70] |' in t2                 # another timing of mqa: not taken for this one


def test_a_point_faster_than_its_roofline_is_flagged(tmp_path):
  from mqa_repro.report import speed
  bench = fake_bench()
  bench['table2'][0]['greedy_roofline_fraction'] = 1.3
  bench['sweeps']['length'][0]['roofline_fraction'] = 1.25
  results = write_results(tmp_path / 'r', [], bench)
  tables.write_tables(results, log=lambda m: None)
  md = (results / 'tables.md').read_text()
  assert '| 1.30 ⚠ / 0.70 |' in md and '| 1.25 ⚠ |' in md
  assert md.count(speed.OVER_ROOFLINE_NOTE) == 2          # under Table 2 and under the sweeps
  t2 = list(csv.DictReader(open(results / 'table2.csv')))
  assert [r['above_roofline'] for r in t2] == ['True', 'False']
  assert speed.fraction(0.62) == '0.62' and speed.fraction(1.01) == '1.01 ⚠'
  fig = speed.sweep_figure(bench)
  labels = [t.get_text() for t in fig.legends[0].get_texts()]
  assert any(label.startswith('faster than its roofline') for label in labels)
  speed.pyplot().close(fig)


def test_sweep_plot_one_colour_per_variant_in_every_panel_legend_outside_titles_say_the_setting():
  from mqa_repro.report import format as fmt_lib
  from mqa_repro.report import quality, speed
  bench = fake_bench()
  bench['sweeps']['kv_heads'] = [{'variant': f'g{g}', 'x': g, 'us_per_token': g * 0.1,
                                  'roofline_us_per_token': g * 0.05, 'roofline_fraction': 0.5}
                                 for g in (1, 2, 4, 8)]
  fig = speed.sweep_figure(bench)
  seen: dict[str, set] = {}
  for ax in fig.axes:
    assert ax.get_legend() is None                       # no legend over the points
    assert 'batch' in ax.get_title() and 'source length 128' in ax.get_title()
    for line in ax.get_lines():
      label = line.get_label().replace(' roofline', '')
      if not label.startswith('_'):
        seen.setdefault(fmt_lib.KV_HEADS_ROW.get(int(label[1:]), label) if label[1:].isdigit() else label,
                        set()).add(line.get_color())
  assert seen['mha'] == {fmt_lib.colour('mha')} and seen['mqa'] == {fmt_lib.colour('mqa')}
  assert fmt_lib.colour('g1') == fmt_lib.colour('mqa') and fmt_lib.colour('g8') == fmt_lib.colour('mha')
  assert fmt_lib.colour('mha') != fmt_lib.colour('mqa')
  assert quality.colour is fmt_lib.colour                 # the quality plots use the same mapping
  assert len(fig.legends) == 1
  title = fig._suptitle.get_text()
  assert 'Fake GPU' in title and 'bf16' in title and 'xla' in title and 'size paper' in title
  speed.pyplot().close(fig)


def test_no_not_run_files_and_no_empty_plots(tmp_path):
  # a benchmark without sweeps, no trained rows: tables.md and table2.csv only
  bench = cpu_bench()
  del bench['sweeps']
  results = write_results(tmp_path / 'bench_only', [], bench)
  written = tables.write_tables(results, log=lambda m: None)
  assert sorted(p.name for p in results.iterdir() if p.is_file()) == ['bench.json', 'table2.csv', 'tables.md']
  assert sorted(p.name for p in written) == ['table2.csv', 'tables.md']
  t2 = _table2_section((results / 'tables.md').read_text())
  assert 'not run' not in t2
  # rows of one task only: no file for the other task's table, no plot without points
  results = write_results(tmp_path / 'wmt_only', [fake_row('translate', 'mha', 1.5, bleu=3.0)])
  tables.write_tables(results, log=lambda m: None)
  names = sorted(p.name for p in results.iterdir() if p.is_file())
  assert not [n for n in names if 'table3' in n or 'quality_lm' in n or 'none' in n or 'bench' in n]
  assert 'quality_wmt.png' in names and 'learning_curves.png' in names
