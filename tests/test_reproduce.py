"""reproduce: row selection, budgets, eval sets, and one real end-to-end run of two tiny rows."""

import dataclasses
import json
import os
import sys
import time

import pytest

from mqa_repro import config as cfg
from mqa_repro import costs
from mqa_repro import experiment as xp
from mqa_repro import reproduce
from mqa_repro.cli import reproduce as reproduce_cli
from mqa_repro.report import records


def test_parse_runs_rows_and_seeds():
  smoke, gpu = xp.PRESETS['smoke'], xp.PRESETS['gpu']
  assert xp.parse_runs('wmt_mha, lm_mqa', smoke) == [xp.Run('translate', 'mha'), xp.Run('lm', 'mqa')]
  assert len(xp.parse_runs('wmt,lm', smoke)) == 14
  assert xp.parse_runs('lm,lm_mha', smoke) == [xp.Run('lm', r) for r in cfg.PAPER_ROWS['lm']]
  assert xp.Run('translate', 'gqa2') in xp.parse_runs('all', smoke)
  # the gpu preset gives multi-head and multi-query three seeds each, the other rows one
  runs = xp.parse_runs('wmt_mha,wmt_h2_dk64', gpu)
  assert [(r.row, r.seed) for r in runs] == [('mha', 0), ('mha', 1), ('mha', 2), ('h2_dk64', 0)]
  assert len(xp.parse_runs(None, gpu)) == 10 + 8 + 2 * 2 * 2
  assert xp.parse_runs('wmt_mqa@2', gpu) == [xp.Run('translate', 'mqa', 2)]
  assert len(xp.parse_runs('wmt_mqa', smoke, seeds=2)) == 2
  assert xp.Run('translate', 'mqa', 2).name('gpu') == 'wmt_mqa_gpu_seed2'
  with pytest.raises(ValueError, match='unknown row'):
    xp.parse_runs('wmt_nope', smoke)
  with pytest.raises(ValueError, match='seed after @'):
    xp.parse_runs('wmt_mha@x', smoke)


def _options(*overrides, **kw):
  return reproduce.Options(preset='smoke', overrides=overrides, **kw)


def test_run_config_applies_plan_seed_preset_then_user_overrides(tmp_path):
  smoke = xp.PRESETS['smoke']
  plan = reproduce.task_plan(smoke, 'translate', None, print)
  c = reproduce.run_config(xp.Run('translate', 'mqa', 1), smoke, plan,
                           _options('--config.train.learning_rate=0.05'), None)
  assert c.size == 'tiny' and c.name == 'wmt_mqa_tiny_seed1'
  assert c.train.seed == c.data.seed == 1
  assert c.train.num_train_steps == plan.steps == 300
  assert c.data.max_eval_examples == smoke.eval_sentences
  assert c.train.learning_rate == 0.05              # the user's override wins over the preset's
  gpu = xp.PRESETS['gpu']
  lm = reproduce.run_config(xp.Run('lm', 'mha'), gpu, gpu.plan('lm'), _options(), tmp_path)
  assert lm.model.d_model == cfg.SIZES['gpu'].d_model and lm.train.num_train_steps == 3000
  assert lm.model.dropout_rate == 0.2               # the gpu preset's stated LM recipe change
  assert lm.data.extra_train_files.startswith(str(tmp_path / 'offline_corpus/english'))
  wmt = reproduce.run_config(xp.Run('translate', 'mha'), gpu, gpu.plan('translate'), _options(), tmp_path)
  assert wmt.train.learning_rate == 0.03 and wmt.train.num_train_steps == 3500
  assert str(tmp_path / 'wmt14_en_de/extra_newstest/newstest2017') in wmt.data.train_files
  assert 'newstest2013' not in wmt.data.train_files and 'newstest2014' not in wmt.data.train_files
  paper = xp.PRESETS['paper']
  p = reproduce.run_config(xp.Run('translate', 'mha'), paper,
                           reproduce.task_plan(paper, 'translate', 'tfds', print), _options(), None)
  assert costs.param_count(p.model, 'translate') == 211_320_832 and p.train.learning_rate == 0.01
  lm_paper = reproduce.run_config(xp.Run('lm', 'mha'), paper,
                                  reproduce.task_plan(paper, 'lm', 'tfds', print), _options(), None)
  assert lm_paper.train.num_train_steps == 136_000 and lm_paper.data.batch_size == 256


def test_eval_groups(tmp_path):
  own = 'offline held-out'
  groups = xp.eval_groups('translate', 'offline', tmp_path, own)
  assert [g.key for g in groups] == ['offline', 'newstest']
  assert groups[1].dev.name == 'newstest2013' and groups[1].test.name == 'newstest2014'
  assert dict(groups[1].data_overrides)['dev_files'] == str(tmp_path / 'wmt14_en_de/newstest2013')
  assert [g.key for g in xp.eval_groups('translate', 'offline', None, own)] == ['offline']
  assert [g.key for g in xp.eval_groups('translate', 'tfds', None, '')] == ['newstest']
  assert [g.key for g in xp.eval_groups('translate', 'text', tmp_path, own)] == ['offline', 'newstest']
  assert [g.key for g in xp.eval_groups('lm', 'offline', tmp_path, own)] == ['offline', 'lm1b']


ROW_KEYS = {'name', 'task', 'row', 'seed', 'label', 'in_paper', 'size', 'model', 'params', 'paper_params',
            'train', 'data', 'evals', 'wall_seconds', 'provenance', 'inputs', 'schema'}
PROVENANCE_KEYS = {'preset', 'command', 'date_utc', 'git_commit', 'git_dirty', 'device_kind', 'platform',
                   'device_count', 'process_count', 'versions'}


def _two_rows_argv(root):
  # batch 8 as conftest's lm_run: the LM row's model and train step are that run's
  return ['--preset', 'smoke', '--rows', 'lm_mqa,wmt_mqa_local', '--steps', '2', '--eval-sentences',
          '4', '--data', 'text', '--results', str(root / 'results'), '--workdirs', str(root / 'work'),
          '--skip-bench', '--config.train.progress=false', '--config.data.batch_size=8']


def two_rows(root, data):
  return [sys.executable, '-m', 'mqa_repro.cli', 'reproduce', *_two_rows_argv(root)], dict(
      env=dict(os.environ, MQA_REPRO_DATA=str(data)))


@pytest.mark.slow
@pytest.mark.background(job=two_rows)
def test_reproduce_two_tiny_rows_end_to_end(shared_data, background, monkeypatch):
  """Real training, decoding and scoring of one WMT and one LM row on small real files (no corpus
  build), by `mqa-repro reproduce`; then reruns in this process."""
  monkeypatch.setenv('MQA_REPRO_DATA', str(shared_data))
  root, proc = background.succeeded(two_rows)
  # the order asked for (LM first), not the tables' order
  said = proc.stdout + proc.stderr
  assert 0 <= said.index('lm_mqa_tiny] train') < said.index('wmt_mqa_local_tiny] train')
  argv = _two_rows_argv(root)
  results = root / 'results'
  env = json.loads((results / 'environment.json').read_text())   # once per results folder
  assert env['dependencies']['jax'] == env['dependencies']['jax'] != 'not installed'
  assert {'jaxlib', 'flax', 'sacrebleu', 'ml-collections'} <= set(env['dependencies'])

  wmt = json.loads((results / 'rows' / 'wmt_mqa_local_tiny.json').read_text())
  lm = json.loads((results / 'rows' / 'lm_mqa_tiny.json').read_text())
  for r in (wmt, lm):
    assert ROW_KEYS <= set(r)
    assert PROVENANCE_KEYS <= set(r['provenance'])
    assert r['provenance']['preset'] == 'smoke' and '--rows' in r['provenance']['command']
    assert {'jax', 'flax', 'optax', 'orbax-checkpoint'} <= set(r['provenance']['versions'])
    assert r['provenance']['environment'] == env['id']   # named, not repeated in every row
    assert 'dependencies' not in json.dumps(r['provenance'])
    assert r['params'] == costs.param_count(cfg.row_config(r['task'], r['row'], 'tiny').model, r['task'])
    assert r['train']['steps'] == 2 and r['train']['loss_curve'][-1][0] == 2
    assert r['train']['started_at_step'] == 0       # trained here from scratch: its time is the run's
    assert r['train']['final_loss'] > 0
    assert set(r['wall_seconds']) == {'train', 'score', 'decode', 'total'}
    assert r['seed'] == 0 and r['train']['recipe']['seed'] == 0

  m = wmt['model']
  assert (m['h'], m['g'], m['window']) == (8, 1, cfg.SIZES['tiny'].window)
  newstest = wmt['evals']['newstest']           # --data text: dev/test ARE newstest2013/2014
  assert newstest['dev']['name'] == 'newstest2013' and newstest['dev']['sentences'] == 4
  assert newstest['dev']['ln_ppl'] > 0 and newstest['dev']['tokens'] > 0
  assert set(newstest['dev']['bleu']) == {'greedy'}
  assert set(newstest['test']['bleu']) == set(newstest['test']['chrf']) == {'greedy', 'beam4'}
  for decoding in newstest['test']['bleu'].values():
    assert 'tok:intl' in decoding['intl']['signature'] and 'tok:13a' in decoding['13a']['signature']
    assert 0.0 <= decoding['intl']['score'] <= 100.0
  assert 'nc:6' in newstest['test']['chrf']['greedy']['signature']
  # one compiled shape per decoding: every greedy split in one call, the beam splits in another
  assert newstest['dev']['decode']['greedy']['call_sentences'] == 8
  assert newstest['test']['decode']['beam4']['call_sentences'] == 4
  assert len(newstest['test']['samples']) == 3
  hyps = results / 'hyps' / 'wmt_mqa_local_tiny'
  assert len(records.read_lines_xz(hyps / 'newstest2014.beam4.txt.xz')) == 4
  assert len(records.read_lines_xz(results / 'refs' / 'newstest2013.ref.txt.xz')) == 4
  dev = lm['evals']['lm1b']['dev']
  assert dev['word_ppl'] > 1 and dev['words'] > 0 and 'bleu' not in dev
  data = json.loads((results / 'data_translate.json').read_text())
  assert data['train']['files'][0]['path'].endswith('europarl_v7_first1000.raw.en')
  assert data['train']['files'][0]['lines'] == 1000 and data['train']['kept'] > 0
  assert data['eval']['newstest2014']['examples'] == 4

  run = json.loads((results / 'run.json').read_text())['history'][-1]
  assert run['runs'] == {'wmt_mqa_local_tiny': 'done', 'lm_mqa_tiny': 'done'} and run['finished']
  assert run['provenance']['environment'] == env['id']
  assert run['bench'].startswith('skipped')
  md = (results / 'tables.md').read_text()
  assert 'multi-query local' in md and 'not run here' in md
  assert (results / 'quality_wmt.png').stat().st_size > 0

  # Resumable: a rerun skips rows whose JSON exists (and does not train or decode again).
  start = time.time()
  assert reproduce_cli.main(argv) == 0
  assert time.time() - start < max(proc.seconds / 2, 10)
  history = json.loads((results / 'run.json').read_text())['history']
  assert len(history) == 2 and all(s.startswith('skipped') for s in history[-1]['runs'].values())

  # Changed inputs (here: more eval sentences) rerun the evaluation, and say why.
  logs = []
  assert reproduce.reproduce(reproduce_args(argv, eval_sentences=5), log=logs.append) == 0
  assert any('changed' in line for line in logs)
  lm = json.loads((results / 'rows' / 'lm_mqa_tiny.json').read_text())
  assert lm['evals']['lm1b']['dev']['sentences'] == 5
  assert lm['train']['started_at_step'] == 2 and lm['wall_seconds']['train'] == 0  # says it reused

  # Results JSON without this checkout's run directory (a fresh clone of a repo with committed
  # results) is not taken as done: that row runs again (the other, with the same inputs, does not).
  import shutil
  shutil.rmtree(root / 'work' / 'lm_mqa_tiny')
  assert reproduce.reproduce(reproduce_args(argv, eval_sentences=5), log=logs.append) == 0
  run = json.loads((results / 'run.json').read_text())['history'][-1]
  assert run['runs']['wmt_mqa_local_tiny'].startswith('skipped')
  assert not run['runs']['lm_mqa_tiny'].startswith('skipped')


def test_an_invocation_cut_short_leaves_its_history_entry(tmp_path):
  """run.json is written when a reproduce starts and after every run: a process killed by a time
  limit leaves what it did, marked unfinished, and tables.md says so."""
  from mqa_repro.report import tables
  results = tmp_path / 'results'
  results.mkdir()
  (results / 'run.json').write_text(json.dumps({'history': [{'preset': 'smoke', 'runs': {}}]}))
  history = reproduce._History(results, 'gpu', {'command': 'mqa-repro reproduce --preset gpu'})
  entries = json.loads((results / 'run.json').read_text())['history']
  assert len(entries) == 2 and entries[-1]['finished'] is False and entries[-1]['runs'] == {}
  history.start -= 90                                     # as if the run took 90 s
  history.update({'wmt_mha_gpu': 'done'})
  last = json.loads((results / 'run.json').read_text())['history'][-1]
  assert last['runs'] == {'wmt_mha_gpu': 'done'} and last['wall_seconds'] >= 90 and not last['finished']
  tables.write_tables(results, log=lambda m: None)
  assert '**cut short**' in (results / 'tables.md').read_text()
  history.update({'wmt_mha_gpu': 'done'}, bench='skipped', finished=True)
  tables.write_tables(results, log=lambda m: None)
  assert 'cut short' not in (results / 'tables.md').read_text()
  # a process that is not the main one writes nothing
  reproduce._History(None, 'gpu', {}).update({'x': 'done'}, finished=True)
  assert len(json.loads((results / 'run.json').read_text())['history']) == 2


def reproduce_args(argv, **changes):
  """The options of `argv` (as the command line parses them), with some changed."""
  return dataclasses.replace(reproduce_cli.parse_options(argv), **changes)


def test_unknown_flag_and_missing_text_data(tmp_path, monkeypatch, capsys):
  with pytest.raises(SystemExit):
    reproduce_cli.main(['--preset', 'smoke', '--bogus'])
  for flag in ('--steps', '--eval-sentences'):    # used to train nothing, then a traceback
    with pytest.raises(SystemExit) as exit_info:
      reproduce_cli.main(['--preset', 'smoke', flag, '-1', '--results', str(tmp_path),
                      '--workdirs', str(tmp_path), '--skip-bench', '--rows', 'lm_mqa', '--data', 'text'])
    assert exit_info.value.code == 2 and f'{flag} must be >= 0' in capsys.readouterr().err
  monkeypatch.delenv('MQA_REPRO_DATA', raising=False)
  monkeypatch.setenv('MQA_REPRO_DATA', str(tmp_path / 'nowhere'))
  assert reproduce_cli.main(['--preset', 'smoke', '--data', 'text', '--results', str(tmp_path),
                         '--workdirs', str(tmp_path), '--skip-bench']) == 2
  assert 'MQA_REPRO_DATA' in capsys.readouterr().err
