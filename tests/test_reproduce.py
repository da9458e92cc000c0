"""reproduce: row selection, budgets, eval sets, and one real end-to-end run of two tiny rows."""

import argparse
import json
import time

import pytest

from mqa_repro import config as cfg
from mqa_repro import reproduce


def test_parse_rows():
  assert reproduce.parse_rows('wmt_mha, lm_mqa') == [('translate', 'mha'), ('lm', 'mqa')]
  assert reproduce.parse_rows(None) == ([('translate', r) for r in cfg.PAPER_ROWS['translate']] +
                                        [('lm', r) for r in cfg.PAPER_ROWS['lm']])
  assert len(reproduce.parse_rows(None)) == 14
  assert reproduce.parse_rows('lm,lm_mha') == [('lm', r) for r in cfg.PAPER_ROWS['lm']]
  assert ('translate', 'gqa2') in reproduce.parse_rows('all')
  with pytest.raises(ValueError, match='unknown row'):
    reproduce.parse_rows('wmt_nope')


def test_row_config_applies_preset_then_user_overrides():
  args = argparse.Namespace(steps=0, eval_sentences=None)
  c = reproduce.row_config('translate', 'mqa', reproduce.PRESETS['smoke'], 'offline', args,
                           ['--config.train.learning_rate=0.05'])
  assert c.size == 'tiny' and c.name == 'wmt_mqa_tiny'
  assert c.train.num_train_steps == reproduce.PRESETS['smoke'].train_steps
  assert c.data.max_eval_examples == reproduce.PRESETS['smoke'].eval_sentences
  assert c.train.learning_rate == 0.05              # the user's override wins over the preset's
  gpu = reproduce.row_config('lm', 'mha', reproduce.PRESETS['gpu'], 'offline', args, [])
  assert gpu.model.d_model == cfg.SIZES['gpu'].d_model
  assert gpu.train.num_train_steps == cfg.SIZES['gpu'].num_train_steps
  paper = reproduce.row_config('translate', 'mha', reproduce.PRESETS['paper'], 'tfds', args, [])
  assert cfg.param_count(paper.model, 'translate') == 211_320_832 and paper.train.learning_rate == 0.01


def test_eval_groups(tmp_path):
  groups = reproduce.eval_groups('translate', 'offline', tmp_path)
  assert [g.key for g in groups] == ['offline', 'newstest']
  assert groups[1].dev.name == 'newstest2013' and groups[1].test.name == 'newstest2014'
  assert [g.key for g in reproduce.eval_groups('translate', 'offline', None)] == ['offline']
  assert [g.key for g in reproduce.eval_groups('translate', 'tfds', None)] == ['newstest']
  assert [g.key for g in reproduce.eval_groups('lm', 'offline', tmp_path)] == ['offline', 'lm1b']


ROW_KEYS = {'name', 'task', 'row', 'label', 'in_paper', 'size', 'model', 'params', 'paper_params', 'train',
            'data', 'evals', 'wall_seconds', 'provenance'}
PROVENANCE_KEYS = {'preset', 'command', 'date_utc', 'git_commit', 'git_dirty', 'device_kind', 'platform',
                   'device_count', 'process_count', 'versions'}


@pytest.mark.slow
def test_reproduce_two_tiny_rows_end_to_end(tmp_path, shared_data, monkeypatch):
  """Real training, decoding and scoring of one WMT and one LM row on small real files (no corpus build)."""
  monkeypatch.setenv('MQA_REPRO_DATA', str(shared_data))
  argv = ['--preset', 'smoke', '--rows', 'wmt_mqa_local,lm_mqa', '--steps', '2', '--eval-sentences', '4',
          '--data', 'text', '--results', str(tmp_path / 'results'), '--workdirs', str(tmp_path / 'work'),
          '--skip-bench', '--config.train.progress=false']
  start = time.time()
  assert reproduce.main(argv) == 0
  results = tmp_path / 'results' / 'smoke'

  wmt = json.loads((results / 'rows' / 'wmt_mqa_local_tiny.json').read_text())
  lm = json.loads((results / 'rows' / 'lm_mqa_tiny.json').read_text())
  for r in (wmt, lm):
    assert ROW_KEYS <= set(r)
    assert PROVENANCE_KEYS <= set(r['provenance'])
    assert r['provenance']['preset'] == 'smoke' and '--rows' in r['provenance']['command']
    assert {'jax', 'flax', 'optax', 'orbax-checkpoint'} <= set(r['provenance']['versions'])
    assert r['params'] == cfg.param_count(cfg.row_config(r['task'], r['row'], 'tiny').model, r['task'])
    assert r['train']['steps'] == 2 and r['train']['loss_curve'][-1][0] == 2
    assert r['train']['final_loss'] > 0
    assert set(r['wall_seconds']) == {'train', 'score', 'decode', 'total'}

  m = wmt['model']
  assert (m['h'], m['g'], m['window']) == (8, 1, cfg.SIZES['tiny'].window)
  newstest = wmt['evals']['newstest']           # --data text: dev/test ARE newstest2013/2014
  assert newstest['dev']['name'] == 'newstest2013' and newstest['dev']['sentences'] == 4
  assert newstest['dev']['ln_ppl'] > 0 and newstest['dev']['tokens'] > 0
  assert set(newstest['dev']['bleu']) == {'greedy'}
  assert set(newstest['test']['bleu']) == {'greedy', 'beam4'}
  for decoding in newstest['test']['bleu'].values():
    assert 'tok:intl' in decoding['intl']['signature'] and 'tok:13a' in decoding['13a']['signature']
    assert 0.0 <= decoding['intl']['score'] <= 100.0
  assert len(newstest['test']['samples']) == 3
  dev = lm['evals']['lm1b']['dev']
  assert dev['word_ppl'] > 1 and dev['words'] > 0 and 'bleu' not in dev

  run = json.loads((results / 'run.json').read_text())
  assert run['rows'] == {'wmt_mqa_local_tiny': 'done', 'lm_mqa_tiny': 'done'}
  assert run['bench'].startswith('skipped')
  md = (results / 'tables.md').read_text()
  assert 'multi-query local' in md and 'not run (1.424)' in md
  assert (results / 'loss_curves.png').stat().st_size > 0

  # Resumable: a rerun skips rows whose JSON exists (and does not train or decode again).
  first = time.time() - start
  start = time.time()
  assert reproduce.main(argv) == 0
  assert time.time() - start < max(first / 2, 10)
  run = json.loads((results / 'run.json').read_text())
  assert all(s.startswith('skipped') for s in run['rows'].values())

  # Results JSON without this checkout's run directory (a fresh clone of a repo with committed
  # results) is not taken as done: that row runs again.
  import shutil
  shutil.rmtree(tmp_path / 'work' / 'smoke' / 'lm_mqa_tiny')
  assert reproduce.main(argv) == 0
  run = json.loads((results / 'run.json').read_text())
  assert run['rows']['wmt_mqa_local_tiny'].startswith('skipped')
  assert not run['rows']['lm_mqa_tiny'].startswith('skipped')


def test_unknown_flag_and_missing_text_data(tmp_path, monkeypatch, capsys):
  with pytest.raises(SystemExit):
    reproduce.main(['--preset', 'smoke', '--bogus'])
  for flag in ('--steps', '--eval-sentences'):    # used to train nothing, then a traceback
    with pytest.raises(SystemExit) as exit_info:
      reproduce.main(['--preset', 'smoke', flag, '-1', '--results', str(tmp_path),
                      '--workdirs', str(tmp_path), '--skip-bench', '--rows', 'lm_mqa', '--data', 'text'])
    assert exit_info.value.code == 2 and f'{flag} must be >= 0' in capsys.readouterr().err
  monkeypatch.delenv('MQA_REPRO_DATA', raising=False)
  monkeypatch.setenv('MQA_REPRO_DATA', str(tmp_path / 'nowhere'))
  assert reproduce.main(['--preset', 'smoke', '--data', 'text', '--results', str(tmp_path),
                         '--workdirs', str(tmp_path), '--skip-bench']) == 2
  assert 'MQA_REPRO_DATA' in capsys.readouterr().err
