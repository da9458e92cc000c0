"""The Python API (mqa_repro/api.py): the example tour runs end to end, and runs trained by the
command line load, translate, continue and score with the command line's numbers."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mqa_repro
from mqa_repro import cli, costs

REPO = Path(__file__).resolve().parent.parent


def api_tour(workdir, data):
  """examples/api_tour.py, run as a user runs it (this checkout's package first on the path, not an
  installed copy)."""
  env = dict(os.environ, MQA_REPRO_DATA=str(data),
             PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
  return [sys.executable, str(REPO / 'examples' / 'api_tour.py'), str(workdir)], dict(cwd=REPO, env=env)


@pytest.fixture(scope='session')
def tour(shared_data, background):
  """The tour's run directory, which serves the tests below, and its output."""
  workdir, proc = background.succeeded(api_tour)
  return workdir, proc.stdout


@pytest.mark.slow
@pytest.mark.background(job=api_tour)
def test_the_api_tour_runs(tour):
  workdir, out = tour
  assert 'wmt_mqa_tiny: multi-query' in out, out
  loss = float(re.search(r'trained 30 steps: loss ([\d.]+)', out).group(1))
  assert loss < math.log(1000), out             # below a uniform guess over the vocabulary
  assert len([line for line in out.splitlines() if ' -> ' in line]) == 2, out
  assert re.search(r'ln\(PPL\) per subword on the references: [\d.]+ over \d+ tokens', out), out
  assert re.search(r'BLEU \(tok intl\): [\d.]+', out) and 'api tour done' in out, out
  assert (workdir / 'config.json').is_file() and (workdir / 'vocab.model').is_file()


def test_import_is_light_and_the_api_is_lazy():
  code = ('import sys, mqa_repro; light = "jax" not in sys.modules; lazy = "mqa_repro.api" not in '
          'sys.modules; mqa_repro.build_model; print(light, lazy, "mqa_repro.api" in sys.modules)')
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                       check=True)
  assert out.stdout.split() == ['True', 'True', 'True']
  with pytest.raises(AttributeError):
    mqa_repro.nope


def test_build_model_names_rows_as_the_command_line_does():
  model = mqa_repro.build_model('lm_gqa2', size='paper')
  assert model.config.model.num_kv_heads == 2 and model.config.name == 'lm_gqa2'
  assert model.num_params == costs.param_count(model.config.model, 'lm')
  tiny_model = mqa_repro.build_model('wmt_mqa', size='tiny', overrides=['model.window=4'])
  assert tiny_model.config.model.window == 4
  params = tiny_model.init(seed=1)
  assert params['decoder_0']['self_attn']['key'].shape == (64, 1, 8)
  with pytest.raises(ValueError, match="unknown row 'xyz_mqa'; rows are wmt_mha, "):
    mqa_repro.build_model('xyz_mqa')
  with pytest.raises(ValueError, match="unknown row 'wmt_nope'.* lm_gqa4"):
    mqa_repro.build_model('wmt_nope')
  with pytest.raises(TypeError, match='overrides must be a list'):
    mqa_repro.build_model('wmt_mqa', 'tiny', overrides='model.window=4')


@pytest.mark.slow
@pytest.mark.background(job=api_tour)
def test_a_loaded_run_translates_scores_and_decodes_as_the_cli(tour, tmp_path, capsys, caplog):
  workdir, _ = tour
  run = mqa_repro.load_run(workdir)
  assert run.task.name == 'translate' and run.tokenizer.vocab_size <= run.config.model.vocab_size
  lines = ['The house is small .', '', 'Where is the station ?']
  best = run.translate(lines, beam=2)
  nbest = run.translate(lines, beam=2, nbest=2)
  assert best[1] == '' and [h[0][0] for h in nbest] == best
  assert nbest[0][0][1] >= nbest[0][1][1] and np.isnan(nbest[1][0][1])
  src = tmp_path / 'in.en'
  src.write_text('\n'.join(lines) + '\n')
  assert cli.main(['decode', '--workdir', str(workdir), '--input', str(src), '--beam', '2']) == 0
  assert capsys.readouterr().out.split('\n')[:3] == best
  with caplog.at_level('INFO', logger='mqa_repro'):     # the default log: the 'mqa_repro' logger
    run.translate([' '.join(['house'] * 200)], beam=1)
  assert any(r.levelname == 'WARNING' and 'were truncated' in r.message for r in caplog.records)

  # perplexity: pairs, TAB-joined lines and a file agree; an empty pair is skipped as in a file
  pairs = [('The house is small .', 'Das Haus ist klein .'), ('Hello', 'Hallo')]
  a = run.perplexity(pairs + [('', '')])
  b = run.perplexity([f'{s}\t{t}' for s, t in pairs])
  (tmp_path / 'p.en').write_text('\n'.join(s for s, _ in pairs) + '\n')
  (tmp_path / 'p.de').write_text('\n'.join(t for _, t in pairs) + '\n')
  c = run.perplexity(tmp_path / 'p')
  assert a['ln_ppl_per_subword'] == b['ln_ppl_per_subword'] == c['ln_ppl_per_subword'] > 0
  assert a['tokens'] == b['tokens'] == c['tokens'] > 2
  # (the run scores in bfloat16, so another batch shape moves the sum in its last bits)
  one = run.perplexity(pairs, batch_size=1)
  assert one['ln_ppl_per_subword'] == pytest.approx(a['ln_ppl_per_subword'], rel=1e-2)
  assert (a['scored'], a['left_out'], b['left_out']) == (2, 1, 0) and 'word_perplexity' not in a

  # bad input: named
  with pytest.raises(ValueError, match='use translate'):
    run.continue_text(['x'])
  with pytest.raises(TypeError, match='lines must be a list of strings'):
    run.translate('The house is small .')
  with pytest.raises(TypeError, match=r'lines\[1\] must be a str'):
    run.translate(['ok', 3])
  with pytest.raises(ValueError, match='beam must be a positive integer'):
    run.translate(['ok'], beam=-1)
  with pytest.raises(ValueError, match='nbest must be between 1 and the beam size 2'):
    run.translate(['ok'], beam=2, nbest=3)
  with pytest.raises(ValueError, match=r'data\[1\] must be a \(source, target\) pair'):
    run.perplexity([('a', 'b'), ('only a source',)])
  with pytest.raises(FileNotFoundError, match=str(tmp_path / 'missing.en')):
    run.perplexity(tmp_path / 'missing')
  with pytest.raises(ValueError, match='nothing to score'):
    run.perplexity([('', 'x')])
  with pytest.raises(ValueError, match='changes the shape'):
    mqa_repro.load_run(workdir, overrides=['model.num_kv_heads=8'])
  with pytest.raises(FileNotFoundError, match=str(tmp_path / 'config.json')):
    mqa_repro.load_run(tmp_path)


@pytest.mark.slow
def test_an_lm_run_trained_by_the_cli_continues_and_scores_as_evaluate(lm_run, tmp_path, capsys):
  c, workdir = lm_run                # conftest: `mqa-repro train`, in this process
  dev = Path(c.data.dev_files)
  run = mqa_repro.load_run(workdir)
  out = run.continue_text(['The government said', 'Hello', ''], max_new_tokens=5)
  assert len(out) == 3 and out[2] == '' and all(isinstance(t, str) for t in out)
  assert out == run.continue_text(['The government said', 'Hello', ''], max_new_tokens=5,
                                  batch_size=1)
  ppl = run.perplexity(['The house is small .', 'Hello world'])
  assert ppl['words'] == 5 + 1 + 2 + 1 and ppl['word_perplexity'] > 1

  # the dev file through the API = `mqa-repro evaluate` on the run's dev split (all of it)
  api = run.perplexity(dev)
  assert cli.main(['evaluate', '--workdir', str(workdir), '--json', str(tmp_path / 'ev.json'),
                   '--config.data.max_eval_examples=0']) == 0
  capsys.readouterr()
  want = json.loads((tmp_path / 'ev.json').read_text())['checkpoint']['perplexity']
  sentences = [line for line in dev.read_text().splitlines() if line.strip()]
  assert api['scored'] + api['left_out'] == len(sentences) and api['scored'] > 0
  assert (api['tokens'], api['words']) == (want['tokens'], want['words'])
  assert api['ln_ppl_per_subword'] == pytest.approx(want['ln_ppl_per_subword'], rel=1e-6)
  assert api['word_perplexity'] == pytest.approx(want['word_perplexity'], rel=1e-6)

  with pytest.raises(ValueError, match='use continue_text'):
    run.translate(['x'])
  with pytest.raises(ValueError, match='max_new_tokens must be a positive integer'):
    run.continue_text(['x'], max_new_tokens=0)
  with pytest.raises(ValueError, match=r'data\[0\] must be a str'):
    run.perplexity([('a', 'b')])
  assert mqa_repro.bleu(['a b c d e'], ['a b c d e'])['intl']['score'] == pytest.approx(100.0)
  with pytest.raises(TypeError, match='references must be a list'):
    mqa_repro.bleu(['a'], 'a')
