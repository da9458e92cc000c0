"""tables: fake results JSON + a fake bench.json -> tables.md / CSV / PNG, ours beside the paper's."""

import csv
import json
from pathlib import Path

import pytest

from mqa_repro import config as cfg
from mqa_repro import tables

PROVENANCE = {'preset': 'smoke', 'command': 'mqa-repro reproduce --preset smoke', 'git_commit': 'abc1234def',
              'git_dirty': False, 'date_utc': '2026-01-02T03:04:05+00:00', 'device_kind': 'cpu',
              'platform': 'cpu', 'device_count': 1, 'versions': {'jax': '0.0.test'}}


def _bleu(score):
  return {tok: {'score': score, 'signature': f'nrefs:1|case:mixed|eff:no|tok:{tok}|smooth:exp|version:x'}
          for tok in ('intl', '13a')}


def fake_row(task, row, ln_ppl, bleu=None, word_ppl=None):
  """A row result with the fields reproduce.run_row writes."""
  c = cfg.row_config(task, row, 'tiny')
  m = c.model
  result = {
      'name': c.name, 'task': task, 'row': row, 'label': c.label, 'in_paper': True, 'size': 'tiny',
      'model': {'h': m.num_heads, 'g': m.num_kv_heads, 'd_k': m.qk_dim, 'd_v': m.v_dim,
                'd_model': m.d_model, 'd_ff': m.d_ff, 'window': m.window,
                'layers': [m.encoder_layers, m.decoder_layers], 'vocab_size': m.vocab_size},
      'params': cfg.param_count(m, task), 'paper_params': 211_000_000,
      'train': {'steps': 30, 'batch_size': 16, 'max_length': 64, 'final_loss': 3.0, 'final_nll': 2.9,
                'loss_curve': [[1, 6.9], [10, 5.0], [20, 4.0], [30, 3.0]],
                'nll_curve': [[1, 6.8], [30, 2.9]], 'recipe': {'learning_rate': 0.1}},
      'data': {'source': 'offline', 'vocab': 'vocab.model', 'vocab_pieces': 1000,
               'max_train_examples': 60000, 'eval_sentences_limit': 300},
      'provenance': PROVENANCE, 'wall_seconds': {'total': 1.0},
  }
  if task == 'translate':
    result['evals'] = {'offline': {'description': 'offline corpus held-out dev / test',
                                   'dev': {'name': 'offline dev', 'sentences': 300, 'ln_ppl': ln_ppl,
                                           'bleu': {'greedy': _bleu(bleu)}},
                                   'test': {'name': 'offline test', 'sentences': 300,
                                            'bleu': {'greedy': _bleu(bleu + 1), 'beam4': _bleu(bleu + 2)}}}}
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


def test_tables_ours_beside_paper_and_not_run(tmp_path):
  rows = [fake_row('translate', 'mha', 1.52, bleu=3.25), fake_row('translate', 'mqa', 1.6, bleu=3.0),
          fake_row('lm', 'mha', 4.1, word_ppl=123.4)]
  results = write_results(tmp_path / 'smoke', rows, fake_bench())
  written = tables.write_tables(results, log=lambda m: None)
  md = (results / 'tables.md').read_text()

  # every paper row of Tables 1-3 appears, ours beside the paper's
  for name in cfg.PAPER_ROWS['translate'] + cfg.PAPER_ROWS['lm']:
    assert cfg.ROWS['translate' if name in tables.PAPER_TABLE1 else 'lm'][name].label in md
  assert '1.520 (1.424)' in md            # WMT multi-head ln(PPL)
  assert '3.25 (26.7)' in md              # BLEU dev
  assert '4.25 / 5.25 (27.7 / 28.4)' in md  # BLEU test greedy / beam 4
  assert '123.4 (29.9)' in md             # LM per-word perplexity
  assert 'not run (1.427)' in md          # multi-head local was not run
  assert 'not run (30.2)' in md           # LM multi-query was not run
  # Table 2 from bench.json, with the decoder ratio and the hardware stated
  assert '0.100 + 2.00 (1.70 + 46.0)' in md
  assert '8.0× (paper 12.1×)' in md and 'Fake GPU' in md
  # the setting above each table comes from provenance
  assert 'abc1234def' in md and '1 × cpu' in md and 'tok:intl' in md

  t1 = list(csv.DictReader(open(results / 'table1_offline.csv')))
  assert [r['row'] for r in t1] == cfg.PAPER_ROWS['translate']
  assert float(t1[0]['ln_ppl_dev']) == 1.52 and float(t1[0]['ln_ppl_dev_paper']) == 1.424
  assert t1[2]['ln_ppl_dev'] == '' and t1[2]['bleu_dev_paper'] == '26.6'
  t3 = list(csv.DictReader(open(results / 'table3_offline.csv')))
  assert len(t3) == 6 and t3[0]['dev_word_ppl'] == '123.4'
  t2 = list(csv.DictReader(open(results / 'table2.csv')))
  assert [r['variant'] for r in t2] == ['mha', 'mqa', 'mha_local', 'mqa_local']

  for png in ('loss_curves.png', 'bench_sweeps.png'):
    assert (results / png) in written
    data = (results / png).read_bytes()
    assert len(data) > 5000 and data[:8] == b'\x89PNG\r\n\x1a\n'


def test_tables_with_nothing_run(tmp_path):
  results = tmp_path / 'empty'
  results.mkdir()
  tables.write_tables(results, log=lambda m: None)
  md = (results / 'tables.md').read_text()
  assert md.count('not run (') >= 8 + 4 + 6
  assert 'no bench.json' in md
  assert (results / 'loss_curves.png').stat().st_size > 0
  assert not (results / 'bench_sweeps.png').exists()


def test_extra_rows_and_cli(tmp_path, capsys):
  rows = [fake_row('translate', 'gqa2', 1.5, bleu=1.0)]
  results = write_results(tmp_path / 'gpu', rows)
  assert tables.main(['--results', str(results)]) == 0
  md = (results / 'tables.md').read_text()
  assert 'grouped-query g=2' in md        # not in the paper: listed after its rows, paper cells '–'
  assert 'tables.md' in capsys.readouterr().out
  assert tables.main(['--preset', 'gpu', '--results', str(tmp_path)]) == 0
  assert tables.main(['--results', str(tmp_path / 'missing')]) == 2


@pytest.mark.parametrize('x,text', [(0.0123456, '0.0123'), (1.234, '1.23'), (46.0, '46.0'), (203.2, '203'),
                                    (None, '–')])
def test_three_significant_digits(x, text):
  assert tables.fmt_sig(x) == text
