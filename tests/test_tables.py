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
          'hardware': {'device': 'Fake GPU', 'copy_GBps': 2670.0, 'matmul_TFLOPs': 644.0},
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
  # paper rows not run are named, never shown as numbers
  assert 'not run here' in md and 'multi-head local' in md and 'not run (1.427)' not in md
  # Table 2 from bench.json, with the decoder ratio and the hardware stated
  assert '0.100 + 2.00 (1.70 + 46.0)' in md
  assert '8.0× (paper 12.1×)' in md and 'Fake GPU' in md
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
  assert [r['variant'] for r in t2] == ['mha', 'mqa', 'mha_local', 'mqa_local']

  for png in ('quality_wmt.png', 'quality_lm.png', 'learning_curves.png', 'bench_sweeps.png'):
    assert (results / png) in written
    data = (results / png).read_bytes()
    assert len(data) > 5000 and data[:8] == b'\x89PNG\r\n\x1a\n'


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
