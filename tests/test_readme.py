"""The README's generated blocks: rendered from results files, and the committed README up to date."""

import json
from pathlib import Path

import pytest

from mqa_repro.report import readme
from test_tables import fake_row, write_results

REPO = Path(__file__).resolve().parent.parent


def test_the_committed_readme_matches_the_committed_results():
  """Every number the README quotes in a generated block is what results/ gives today."""
  assert readme.main(['--check', '--readme', str(REPO / 'README.md')]) == 0


def test_blocks_are_rendered_from_results_and_stale_ones_are_caught(tmp_path):
  (tmp_path / 'results' / 'gpu').mkdir(parents=True)
  (tmp_path / 'results' / 'gpu' / 'h100_relabelled.json').write_text(json.dumps({'rows': [
      {'file': 'h100_pallas_reorder_mha_mqa.json', 'variant': v, 'greedy_us_per_token': g,
       'beam_us_per_token': b, 'greedy_sequential_fraction': f}
      for v, g, b, f in (('mha', 2.5, 12.0, 0.65), ('mqa', 1.25, 6.0, 0.4))]}))
  rows = [fake_row('translate', r, ln, bleu=bl, seed=s) for r, ln, bl, s in (
      ('mha', 1.50, 20.0, 0), ('mha', 1.52, 20.5, 1), ('mqa', 1.60, 19.0, 0), ('mqa', 1.62, 19.2, 1))]
  for r in rows:   # the glance block reads the paper's eval sets
    r['evals']['newstest'] = r['evals'].pop('offline')
  write_results(tmp_path / 'results' / 'h200', rows)
  text = 'intro\n<!-- begin: glance -->\nold\n<!-- end: glance -->\n<!-- begin: setup -->\n<!-- end: setup -->\n'
  (tmp_path / 'README.md').write_text(text)
  assert readme.main(['--check', '--readme', str(tmp_path / 'README.md')]) == 1
  assert readme.main(['--readme', str(tmp_path / 'README.md')]) == 0
  out = (tmp_path / 'README.md').read_text()
  assert out.startswith('intro\n<!-- begin: glance -->\n') and 'old' not in out
  assert '2.0× faster' in out and '1.510 ± 0.014 (n=2)' in out and '+0.100 ± 0.014' in out
  # an H200 benchmark without both variants (a run cut after multi-head) does not replace the H100's
  (tmp_path / 'results' / 'h200' / 'bench.json').write_text(json.dumps({
      'hardware': {'device': 'NVIDIA H200'}, 'table2': [{'variant': 'mha', 'greedy_decoder_us_per_token': 2.2}]}))
  glance = readme.glance(tmp_path)
  assert '2.0× faster' in glance and 'one H100 80GB' in glance
  assert 'worse beyond 2 s.e.' in out and 'Setup times not measured yet' in out
  assert readme.main(['--check', '--readme', str(tmp_path / 'README.md')]) == 0
  (tmp_path / 'README.md').write_text('<!-- begin: nope -->\n<!-- end: nope -->\n')
  with pytest.raises(ValueError, match='nope'):
    readme.main(['--readme', str(tmp_path / 'README.md')])


def test_the_lm_peer_table_needs_ours_and_reads_128_new_tokens(tmp_path):
  (tmp_path / 'results' / 'h200').mkdir(parents=True)

  def point(system, v, b, us, n=128):
    return {'system': system, 'variant': v, 'batch': b, 'new_tokens': n, 'us_per_token': us,
            'ms_per_step': us * b / 1e3}
  pts = [point(s, v, b, us) for s, f in (('ours', 1.0), ('torch', 1.5)) for v in ('mha', 'mqa')
         for b, us in ((1024, 1.3 * f), (1, 330.0 * f))]
  pts.append(point('ours', 'mha', 1024, 9.9, n=1024))   # another length: not this table's
  path = tmp_path / 'results' / 'h200' / 'bench.json'
  path.write_text(json.dumps({'lm_decode': {'points': pts}}))
  text = '\n'.join(readme._lm_peer_lines(tmp_path))
  assert '| ours (JAX, Pallas) | 1.3 | 1.3 | 0.33 | 0.33 |' in text
  assert '| compiled PyTorch | 1.95 | 1.95 | 0.495 | 0.495 |' in text and 'HF' not in text  # HF absent
  path.write_text(json.dumps({'lm_decode': {'points': [p for p in pts if p['system'] != 'ours']}}))
  assert readme._lm_peer_lines(tmp_path) == []   # peers alone, without ours, say nothing


def test_a_reading_may_quote_only_numbers_its_folder_generated(tmp_path):
  """A hand-written reading.md is checked against the folder's generated files, not against the copy
  of itself that tables.md carries."""
  (tmp_path / 'tables.md').write_text('# t\n\n## Reading\n\n1.234 and 9.876\n\n## Table 1\n\n| 1.234 |\n')
  (tmp_path / 'sub').mkdir()
  (tmp_path / 'sub' / 'uptrain.csv').write_text('run,bleu\nx,10.70123\n')
  (tmp_path / 'sub' / 'steps.md').write_text('3500 steps, 13.52 BLEU\n')
  (tmp_path / 'reading.md').write_text('ours 1.234, uptrained 10.70 (rounded), and 9.876 from nowhere; '
                                       '3.5 is neither 3500 nor 13.52; 1.23 and 10.7 round what was found\n')
  assert readme.unsourced_numbers(tmp_path) == ['9.876', '3.5']
  (tmp_path / 'reading.md').write_text('ours 1.234, uptrained 10.70\n')
  assert readme.unsourced_numbers(tmp_path) == []


def test_the_committed_readings_quote_only_generated_numbers():
  for reading in sorted(REPO.glob('results/*/reading.md')):
    assert readme.unsourced_numbers(reading.parent) == [], reading
