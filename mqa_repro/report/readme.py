"""The README's numbers, generated from the committed results so that prose and files cannot drift.

    python -m mqa_repro.report.readme            # rewrite the generated blocks of README.md
    python -m mqa_repro.report.readme --check    # exit 1 if a block differs from what results/ gives,
                                                 # or a results/*/reading.md quotes a number no
                                                 # generated file of its folder holds

A generated block sits between ``<!-- begin: NAME -->`` and ``<!-- end: NAME -->``; everything between
the two markers is replaced. Blocks:
  glance  what multi-query buys in decoding speed and costs in quality, from results/h200 (quality,
          speed on the H200 when measured) and results/gpu (the H100 speed runs, relabelled against
          the datasheet by scripts/relabel_h100.py);
  reading results/h200/reading.md, the hand-written reading of the scaled reproduction (its numbers
          are checked against that folder's generated files: unsourced_numbers);
  smoke   the smoke preset's numbers (results/smoke) and its wall time;
  setup   the two setup commands' times on an idle 2-core machine (results/setup_times.json, written
          by scripts/time_setup.sh from a fresh clone).
Numbers the README quotes outside these blocks must not be results.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

from mqa_repro import experiment as xp
from mqa_repro.report import quality
from mqa_repro.report.format import md_table
from mqa_repro.report.tables import READING

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r'(<!-- begin: (?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)', re.S)


def _json(path: Path) -> dict | None:
  return json.loads(path.read_text(encoding='utf-8')) if path.is_file() else None


def _speed_rows(root: Path) -> tuple[str, dict[str, dict]]:
  """(hardware and source text, {variant: {greedy, beam, greedy_fraction}}) of the newest speed run
  with the kernels: the H200's when results/h200/bench.json holds both multi-head and multi-query
  (the comparison the glance shows), else the H100 history."""
  h200 = _json(root / 'results' / 'h200' / 'bench.json')
  if h200 and {'mha', 'mqa'} <= {e['variant'] for e in h200.get('table2', [])}:
    rows = {e['variant']: {'greedy': e.get('greedy_decoder_us_per_token_pallas') or e['greedy_decoder_us_per_token'],
                           'beam': e.get('beam_decoder_us_per_token_pallas') or e.get('beam_decoder_us_per_token'),
                           'fraction': e.get('greedy_sequential_roofline_fraction_pallas')
                           or e.get('greedy_sequential_roofline_fraction')}
            for e in h200['table2']}
    return f"one {h200['hardware']['device']} (`results/h200/bench.json`)", rows
  relabelled = _json(root / 'results' / 'gpu' / 'h100_relabelled.json') or {'rows': []}
  rows = {r['variant']: {'greedy': r['greedy_us_per_token'], 'beam': r['beam_us_per_token'],
                         'fraction': r['greedy_sequential_fraction']}
          for r in relabelled['rows'] if r['file'] == 'h100_pallas_reorder_mha_mqa.json'}
  return ('one H100 80GB, before the H200 runs (`docs/speed.md`; fractions against the H100 datasheet, '
          '`results/gpu/h100_relabelled.json`)'), rows


def _lm_peer_lines(root: Path) -> list[str]:
  """Our LM decoder beside the peers at 128 new tokens, batch 1024 and 1 (results/h200/bench.json's
  lm_decode points); [] when that file has no such points for multi-head and multi-query."""
  bench = _json(root / 'results' / 'h200' / 'bench.json') or {}
  points = {(p['system'], p['variant'], p['batch']): p
            for p in (bench.get('lm_decode') or {}).get('points', [])
            if p.get('new_tokens') == 128 and 'us_per_token' in p}
  systems = (('ours', 'ours (JAX, Pallas)'), ('torch', 'compiled PyTorch'), ('hf', 'HF transformers'))
  rows = []
  for system, name in systems:
    cells = [points.get((system, v, b)) for b in (1024, 1) for v in ('mha', 'mqa')]
    if any(c is None for c in cells):
      continue
    rows.append([name] + [f"{c['us_per_token']:.3g}" for c in cells[:2]]
                + [f"{c['ms_per_step']:.3g}" for c in cells[2:]])
  if not rows or rows[0][0] != systems[0][1]:
    return []
  return ["**LM decoding beside the peers** — Table 3's LM dims, greedy, 128 new tokens, same GPU and "
          'run (`results/h200/tables.md` has every batch, 1024 new tokens and the roofline fractions; '
          '`docs/speed.md` what bounds each):', '',
          *md_table(['decoder', 'batch 1024, multi-head µs/token', 'batch 1024, multi-query µs/token',
                     'batch 1, multi-head ms/step', 'batch 1, multi-query ms/step'], rows), '']


def glance(root: Path) -> str:
  hw, speed = _speed_rows(root)
  lines = []
  mha, mqa = speed.get('mha'), speed.get('mqa')
  if mha and mqa:
    lines += [f'**Speed** — the paper\'s WMT model (211M parameters), batch 1024, source and target 128, '
              f'with our Pallas decode kernels, on {hw}; the share of the sequential roofline is against '
              f'the datasheet:', '',
              *md_table(['decoder, µs per output token', 'multi-head', 'multi-query', 'multi-query is',
                         'paper (TPUv2)'],
                        [['greedy', f"{mha['greedy']:.2f}", f"{mqa['greedy']:.2f}",
                          f"{mha['greedy'] / mqa['greedy']:.1f}× faster", '46 vs 3.8: 12×'],
                         ['beam 4', f"{mha['beam']:.1f}", f"{mqa['beam']:.2f}",
                          f"{mha['beam'] / mqa['beam']:.1f}× faster", '203 vs 32: 6.3×'],
                         ['greedy, share of the sequential roofline', f"{mha['fraction']:.0%}",
                          f"{mqa['fraction']:.0%}", '', '']]), '']
  lines += _lm_peer_lines(root)
  results = root / 'results' / 'h200'
  rows = quality.load_rows(results) if (results / 'rows').is_dir() else {'translate': [], 'lm': []}
  found = []
  t1, t3 = xp.PAPER_TABLE1, xp.PAPER_TABLE3
  for task, group, metric, role, lower, name, digits, paper in (
      ('translate', 'newstest', ('ln_ppl',), 'dev', True, 'WMT ln(PPL) per subword, newstest2013', 3,
       (t1['mha'][3], t1['mqa'][3])),
      ('translate', 'newstest', ('bleu', 'greedy', 'intl', 'score'), 'test', False,
       'WMT BLEU newstest2014, greedy', 2, (t1['mha'][5], t1['mqa'][5])),
      ('translate', 'offline', ('bleu', 'greedy', 'intl', 'score'), 'test', False,
       'WMT BLEU offline test (in-domain), greedy', 2, None),
      ('lm', 'lm1b', ('word_ppl',), 'dev', True, 'LM perplexity per word, lm1b heldout', 1,
       (t3['mha'][3], t3['mqa'][3])),
      ('lm', 'offline', ('word_ppl',), 'dev', True, 'LM perplexity per word, offline dev (in-domain)', 1,
       None)):
    by = {r.row: r for r in rows[task]}
    if 'mha' not in by or 'mqa' not in by:
      continue
    a, b = (quality.Stat.of(by[r].values(group, role, *metric)) for r in ('mha', 'mqa'))
    if a.mean is None or b.mean is None:
      continue
    d, se, noise = quality.compare(b, a, lower)
    found.append([name, a.text(digits) + f' (n={a.n})', b.text(digits) + f' (n={b.n})',
                  f'{d:+.{digits}f}' + (f' ± {se:.{digits}f}' if se is not None else '') + f', {noise}',
                  f'{paper[1] - paper[0]:+.{max(digits, 1)}f} ({paper[0]} → {paper[1]})' if paper else '–'])
  if found:
    first = rows['translate'][0].runs[0] if rows['translate'] else rows['lm'][0].runs[0]
    lines += [f"**Quality** — the scaled reproduction (size `{first['size']}`: d_model "
              f"{first['model']['d_model']}, the paper's depth, every row at equal parameters; "
              f"`results/h200/tables.md`), mean ± std over seeds:", '',
              *md_table(['', 'multi-head', 'multi-query', 'multi-query minus multi-head (± s.e.)',
                         'paper: the same difference'], found), '']
  else:
    lines += ["**Quality** — the scaled reproduction on the H200 (`gpu` preset, d_model 512 at the paper's "
              "depth, 3 seeds of multi-head and multi-query) has not produced its rows yet; its sizing "
              "runs are in `results/h200/sizing*`.", '']
  return '\n'.join(lines)


def smoke(root: Path) -> str:
  results = root / 'results' / 'smoke'
  rows = quality.load_rows(results) if (results / 'rows').is_dir() else {'translate': [], 'lm': []}
  if not rows['translate'] and not rows['lm']:
    return '*No smoke results committed.*\n'
  table = []
  by_t = {r.row: r for r in rows['translate']}
  by_l = {r.row: r for r in rows['lm']}
  for row in ('mha', 'mqa', 'mha_local', 'mqa_local'):
    t, m = by_t.get(row), by_l.get(row)
    if t is None:
      continue
    ppl = quality.Stat.of(t.values('offline', 'dev', 'ln_ppl'))
    lm = quality.Stat.of(m.values('offline', 'dev', 'word_ppl')) if m else quality.Stat(None, None, 0)
    table.append([t.label, ppl.text(3), lm.text(1) if lm.mean is not None else '–'])
  history = (_json(results / 'run.json') or {}).get('history') or []
  last = history[-1] if history else {}
  run = next((r for row in rows['translate'] for r in row.runs), None)
  prov = (run or {}).get('provenance', {})
  return '\n'.join([
      f"From `results/smoke/` (commit {str(prov.get('git_commit', '?'))[:7]}, "
      f"{prov.get('device_count', '?')} × {prov.get('device_kind', '?')}, "
      f"{last.get('wall_seconds', 0) / 60:.1f} min for the whole run): 0.3M-parameter twins of the "
      f"paper's rows, 300 steps — a check that every stage runs, not a quality claim.", '',
      *md_table(['variant', 'WMT ln(PPL), offline dev', 'LM per-word PPL, offline dev'], table), ''])


def setup(root: Path) -> str:
  times = _json(root / 'results' / 'setup_times.json')
  if not times:
    return '*Setup times not measured yet (`scripts/time_setup.sh`).*\n'
  return (f"Measured from a fresh clone on an idle {times['cpus']}-core machine ({times['date'][:10]}, "
          f"commit {times['commit'][:7]}, `scripts/time_setup.sh`): the main command took "
          f"{times['main_seconds'] / 60:.0f} minutes (install {times['install_seconds'] / 60:.1f}, "
          f"corpus build and run included), the tests {times['tests_seconds'] / 60:.0f} minutes "
          f"(install included).\n")


NUMBER = re.compile(r'(?<![\d.])\d+\.\d+(?![\d.])')
SOURCE_NUMBER = re.compile(r'(?<![\d.])\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\d.])')


def unsourced_numbers(results: Path) -> list[str]:
  """The decimal numbers of ``<results>/reading.md`` (the hand-written reading) that no number in the
  folder's generated text files (tables, CSVs, reports, at any depth; tables.md without the reading
  it quotes) rounds to; [] when every one is found. 1.503 is found in a CSV's 1.5030113, 3.5 is not
  found in 13.52 or 3500."""
  reading = results / READING
  if not reading.is_file():
    return []
  found: set[str] = set()
  for f in sorted(results.rglob('*.md')) + sorted(results.rglob('*.csv')):
    if f == reading:
      continue
    text = re.sub(r'\n## Reading\n.*?(?=\n## )', '\n', f.read_text(encoding='utf-8'), flags=re.S)
    for n in SOURCE_NUMBER.findall(text):
      decimals = len(n.split('.')[1]) if '.' in n else 0
      found.update(f'{float(n):.{k}f}' for k in range(1, decimals + 1))
  return [n for n in NUMBER.findall(reading.read_text(encoding='utf-8')) if n.lstrip('+-') not in found]


def reading(root: Path) -> str:
  path = root / 'results' / 'h200' / READING
  if not path.is_file():
    return '*No written reading of the scaled reproduction yet.*\n'
  return path.read_text(encoding='utf-8').strip() + '\n'


BLOCKS: dict[str, Callable[[Path], str]] = {'glance': glance, 'reading': reading, 'smoke': smoke,
                                            'setup': setup}


def render(text: str, root: Path = REPO) -> str:
  def one(m: re.Match) -> str:
    name = m.group('name')
    if name not in BLOCKS:
      raise ValueError(f'README block {name!r} is not one of {sorted(BLOCKS)}')
    return m.group(1) + BLOCKS[name](root).rstrip('\n') + '\n' + m.group(4)
  return BLOCK.sub(one, text)


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog='python -m mqa_repro.report.readme', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--check', action='store_true', help='exit 1 when a block differs from the results')
  p.add_argument('--readme', default=str(REPO / 'README.md'))
  args = p.parse_args(argv)
  path = Path(args.readme)
  old = path.read_text(encoding='utf-8')
  new = render(old, path.parent)
  if args.check:
    for reading in sorted(path.parent.glob(f'results/*/{READING}')):
      missing = unsourced_numbers(reading.parent)
      if missing:
        print(f"{reading}: numbers found in none of the folder's generated files: {', '.join(missing)}",
              file=sys.stderr)
        return 1
    if new != old:
      print(f'{path}: generated blocks are stale; run python -m mqa_repro.report.readme', file=sys.stderr)
      return 1
    return 0
  path.write_text(new, encoding='utf-8')
  return 0


if __name__ == '__main__':
  sys.exit(main())
