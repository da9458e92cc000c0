"""Results -> tables.md, CSV files and plots: Tables 1 and 3 (mqa_repro.report.quality) and Table 2.

    mqa-repro tables --preset smoke            # reads ./results/smoke/
    mqa-repro tables --results DIR             # any results directory (rows/*.json, bench.json)

Writes into that directory:
  tables.md                    every table, each cell ``ours (paper)``, with the scale, data, recipe
                               and hardware of our numbers stated above it (from the results'
                               records and provenance), and each row's difference from multi-head
                               against the seed noise;
  table1_<evalset>.csv, table3_<evalset>.csv, runs_table*_<evalset>.csv, table2.csv
                               the same with ours (mean, std over seeds) and the paper's in separate
                               columns, and every run's own numbers;
  quality_wmt.png, quality_lm.png, learning_curves.png, bench_sweeps.png
                               per-row quality with every seed, every run's dev curve, and the
                               decoder sweeps with the roofline (only when bench.json has sweeps).
A table section appears only for what was run; the paper rows not run are listed by name.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from mqa_repro import config as cfg
from mqa_repro.experiment import PAPER_TABLE2, PAPER_TABLE2_SETTING
from mqa_repro.report.format import md_table as _md_table
from mqa_repro.report.format import pyplot as _pyplot
from mqa_repro.report.format import write_csv as _write_csv

Log = Callable[[str], None]
NOT_RUN = 'not run'



# --------------------------------------------------------------------------------------------------
# Formatting.


def fmt(x: Any, digits: int = 2) -> str:
  if x is None or (isinstance(x, float) and not math.isfinite(x)):
    return '–'
  if isinstance(x, int):
    return str(x)
  return f'{x:.{digits}f}'


def fmt_sig(x: float | None, sig: int = 3) -> str:
  """Three significant digits: 0.0123, 1.23, 46.0, 203 (µs span five orders of magnitude)."""
  if x is None or not math.isfinite(x):
    return '–'
  if x == 0:
    return '0'
  digits = max(sig - 1 - int(math.floor(math.log10(abs(x)))), 0)
  return f'{x:.{digits}f}'



def cell(ours: str, paper: str) -> str:
  return f'{ours} ({paper})'


def load_bench(results: Path) -> dict | None:
  f = results / 'bench.json'
  return json.loads(f.read_text(encoding='utf-8')) if f.is_file() else None


# --------------------------------------------------------------------------------------------------
# Table 2 (speed, from bench.json).

T2_KEYS = ('train_us_per_token', 'greedy_encoder_us_per_token', 'greedy_decoder_us_per_token',
           'beam_encoder_us_per_token', 'beam_decoder_us_per_token')


def table2(bench: dict | None, out_dir: Path) -> tuple[list[str], list[str], Path]:
  """(setting lines, table lines, csv path)."""
  header = ['attention', 'training', 'inference enc. + dec. (greedy)', 'beam-4 search enc. + dec.',
            'roofline fraction greedy / beam']
  csv_header = ['variant', 'attention'] + [k for key in T2_KEYS for k in (key, key + '_paper')] + [
      'greedy_roofline_fraction', 'beam_roofline_fraction']
  ours = {e['variant']: e for e in (bench or {}).get('table2', [])}
  md, csv_rows = [], []
  for variant in list(PAPER_TABLE2) + [v for v in ours if v not in PAPER_TABLE2]:
    p = PAPER_TABLE2.get(variant, (None,) * 5)
    e = ours.get(variant)
    label = (e or {}).get('label') or cfg.ROWS['translate'][variant].label
    paper_g = f'{fmt_sig(p[1])} + {fmt_sig(p[2])}'
    paper_b = f'{fmt_sig(p[3])} + {fmt_sig(p[4])}'
    if e is None:
      md.append([label, cell(NOT_RUN, fmt_sig(p[0])), cell(NOT_RUN, paper_g), cell(NOT_RUN, paper_b), '–'])
      csv_rows.append([variant, label] + [v for pv in p for v in (None, pv)] + [None, None])
      continue
    vals = [e.get(k) for k in T2_KEYS]
    md.append([label, cell(fmt_sig(vals[0]), fmt_sig(p[0])),
               cell(f'{fmt_sig(vals[1])} + {fmt_sig(vals[2])}', paper_g),
               cell(f'{fmt_sig(vals[3])} + {fmt_sig(vals[4])}', paper_b),
               f"{fmt(e.get('greedy_roofline_fraction'))} / {fmt(e.get('beam_roofline_fraction'))}"])
    csv_rows.append([variant, label] + [v for pair in zip(vals, p) for v in pair] +
                    [e.get('greedy_roofline_fraction'), e.get('beam_roofline_fraction')])
  path = _write_csv(out_dir / 'table2.csv', csv_header, csv_rows)

  setting: list[str] = []
  if bench is None:
    setting.append('*Ours: not run (no bench.json; `mqa-repro bench` or `mqa-repro reproduce` writes it).*')
  else:
    s, hw, prov = bench.get('setting', {}), bench.get('hardware', {}), bench.get('provenance', {})
    setting.append(f"- **Setting**: size `{s.get('size', '?')}`, batch {s.get('batch', '?')}, source length "
                   f"{s.get('source_len', '?')}, target length {s.get('target_len', '?')}, beam "
                   f"{s.get('beam', '?')} (paper: {PAPER_TABLE2_SETTING}).")
    setting.append(f"- **Hardware**: {hw.get('device', prov.get('device', '?'))}; measured copy "
                   f"bandwidth {fmt_sig(hw.get('copy_GBps'))} GB/s, matmul {fmt_sig(hw.get('matmul_TFLOPs'))} "
                   f"TFLOP/s" + (f"; the roofline's ceilings {fmt_sig(hw['ceiling_GBps'])} GB/s "
                                 f"({hw['ceiling_basis']['bandwidth']}), {fmt_sig(hw['ceiling_TFLOPs'])} "
                                 f"TFLOP/s ({hw['ceiling_basis']['matmul']})."
                                 if 'ceiling_basis' in hw else " (the roofline's inputs)."))
    if prov:
      setting.append(f"- **Code**: commit {str(prov.get('git_commit', '?'))[:10]}, jax "
                     f"{prov.get('versions', {}).get('jax', prov.get('jax', '?'))}, "
                     f"{str(prov.get('date_utc', prov.get('date', '?')))[:10]}.")
    impls = sorted({k[len('greedy_decoder_us_per_token_'):] for e in ours.values() for k in e
                    if k.startswith('greedy_decoder_us_per_token_')})
    for impl in [''] + impls:
      ratios, sfx = [], f'_{impl}' if impl else ''
      for kind, key, pk in (('greedy', 'greedy_decoder_us_per_token', 2),
                            ('beam-4', 'beam_decoder_us_per_token', 4)):
        a, b = (ours.get('mha') or {}).get(key + sfx), (ours.get('mqa') or {}).get(key + sfx)
        if a and b:
          ratios.append(f'{kind} {a / b:.1f}× (paper {PAPER_TABLE2["mha"][pk] / PAPER_TABLE2["mqa"][pk]:.1f}×)')
      if ratios:
        path_note = f' with `--attention-impl {impl}`' if impl else ''
        setting.append(f"- **Multi-head / multi-query decoder time{path_note}**: {', '.join(ratios)}.")
    seq = [f"{(ours[v].get('label') or v)} {fmt_sig(ours[v]['greedy_sequential_roofline_us_per_token'])} "
           f"({fmt(ours[v].get('greedy_sequential_roofline_fraction'))})"
           for v in ours if ours[v].get('greedy_sequential_roofline_us_per_token')]
    if seq:
      setting.append('- **Sequential roofline** (greedy; the dense matmuls and attention run as separate '
                     'kernels, so their bounds add): µs/token (fraction reached) ' + ', '.join(seq) + '.')
    for impl in impls:
      alt = [f"{(e.get('label') or v)} {fmt_sig(e[f'greedy_decoder_us_per_token_{impl}'])} "
             f"({fmt(e.get(f'greedy_roofline_fraction_{impl}'))} / "
             f"{fmt(e.get(f'greedy_sequential_roofline_fraction_{impl}'))})"
             for v, e in ours.items() if e.get(f'greedy_decoder_us_per_token_{impl}')]
      setting.append(f'- **Greedy decoder with `--attention-impl {impl}`**: µs/token (fraction of the '
                     f'roofline / of the sequential roofline) ' + ', '.join(alt) + '.')
      beam = [f"{(e.get('label') or v)} {fmt_sig(e[f'beam_decoder_us_per_token_{impl}'])} "
              f"({fmt_sig(e.get(f'beam_vs_greedy_per_hypothesis_{impl}'))}×)"
              for v, e in ours.items() if e.get(f'beam_decoder_us_per_token_{impl}')]
      if beam:
        setting.append(f'- **Beam-4 decoder with `--attention-impl {impl}`**: µs/token (cost per '
                       f'hypothesis / greedy\'s, same path) ' + ', '.join(beam) + '.')
  return setting, _md_table(header, md), path


def kernel_table(bench: dict) -> list[str]:
  """Decode attention alone (`bench --kernels`): XLA, the kernel's defaults and its best tuning."""
  cases: dict[str, dict] = {}
  for r in bench.get('kernels') or []:
    if 'us' not in r:
      continue
    c = cases.setdefault(r['case'], {})
    if r['impl'] == 'xla':
      c['xla'] = r
    elif not r['tuning']:
      c['default'] = r
    if r['impl'] != 'xla' and ('best' not in c or r['us'] < c['best']['us']):
      c['best'] = r
  rows = []
  for name, c in cases.items():
    cell_of = lambda r: f"{fmt_sig(r['us'])} µs ({100 * r['copy_fraction']:.0f}%)" if r else '–'
    best = c.get('best')
    rows.append([name, cell_of(c.get('xla')), cell_of(c.get('default')), cell_of(best),
                 ', '.join(f'{k}={v}' for k, v in (best or {}).get('tuning', {}).items()) or 'defaults'])
  if not rows:
    return []
  return _md_table(['case', 'XLA einsums', "Pallas (the run's defaults)", 'Pallas (best)', 'best tuning'], rows)


def lm_decode_table(bench: dict) -> list[str]:
  """LM decoding (`bench --parts lm_decode`): µs per token of ours and each peer (fraction of the
  sequential roofline), and ours / peer; [] when the benchmark has no such points."""
  block = bench.get('lm_decode') or {}
  points = [p for p in block.get('points', []) if 'us_per_token' in p]
  if not points:
    return []
  name = lambda p: f"ours ({p['attention_impl']})" if p['system'] == 'ours' else p['system']  # noqa: E731
  by = {(name(p), p['variant'], p['new_tokens'], p['batch']): p for p in points}
  systems = sorted({name(p) for p in points}, key=lambda s: (not s.startswith('ours'), s))
  ours = [s for s in systems if s.startswith('ours')]
  peers = [s for s in systems if s not in ours]
  rows = []
  for variant, n, b in sorted({k[1:] for k in by}, key=lambda k: (k[1], k[0], k[2])):
    got = {s: by.get((s, variant, n, b)) for s in systems}
    rows.append([variant, str(n), str(b)]
                + [f"{fmt_sig(p['us_per_token'])} ({fmt(p['sequential_roofline_fraction'])})" if p else '–'
                   for p in got.values()]
                + [fmt_sig(got[o]['us_per_token'] / got[q]['us_per_token']) if got[o] and got[q] else '–'
                   for o in ours for q in peers])
  hw = bench.get('hardware', {})
  lines = ['### LM decoding (`mqa-repro bench --parts lm_decode`): µs per token (fraction of the '
           'sequential roofline)', '',
           f"- Greedy from a 1-token prompt, N new tokens with EOS masked, random bf16 weights, on "
           f"{hw.get('device', '?')}; roofline ceilings {fmt_sig(hw.get('ceiling_GBps'))} GB/s "
           f"({hw.get('ceiling_basis', {}).get('bandwidth', '?')}), {fmt_sig(hw.get('ceiling_TFLOPs'))} "
           f"TFLOP/s ({hw.get('ceiling_basis', {}).get('matmul', '?')}). ours / peer below 1: ours is "
           f"faster."]
  for peer, info in (block.get('peers') or {}).items():
    if info.get('note'):
      lines.append(f"- Peer {peer}: {info['note']}.")
  header = ['variant', 'N', 'batch'] + systems + [f'{o} / {q}' for o in ours for q in peers]
  return lines + [''] + _md_table(header, rows) + ['']


# --------------------------------------------------------------------------------------------------
# Plots.


SWEEP_TITLES = {'length': 'target length', 'batch': 'batch size', 'kv_heads': 'kv heads g'}


def sweep_table(bench: dict) -> list[str]:
  """The sweep points behind the plot: decoder µs/token beside the roofline, per sweep."""
  rows = []
  for name, points in (bench.get('sweeps') or {}).items():
    for p in sorted(points, key=lambda p: (p['variant'], p['x'])):
      rows.append([SWEEP_TITLES.get(name, name), p['variant'], str(p['x']), fmt_sig(p['us_per_token']),
                   fmt_sig(p.get('roofline_us_per_token')), fmt(p.get('roofline_fraction'))])
  return _md_table(['sweep', 'variant', 'x', 'µs/token', 'roofline µs/token', 'fraction'], rows)


def plot_bench_sweeps(bench: dict, path: Path) -> Path | None:
  sweeps = {k: v for k, v in (bench.get('sweeps') or {}).items() if v}
  if not sweeps:
    return None
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(sweeps), figsize=(5 * len(sweeps), 4.2), squeeze=False)
  for ax, (name, points) in zip(axes[0], sweeps.items()):
    variants = list(dict.fromkeys(p['variant'] for p in points))
    if all(sum(p['variant'] == v for p in points) == 1 for v in variants):
      # one point per variant (e.g. the kv-heads sweep: g1, g2, g8): draw them as one curve
      points = [dict(p, variant=name) for p in points]
      variants = [name]
    for i, v in enumerate(variants):
      pts = sorted((p for p in points if p['variant'] == v), key=lambda p: p['x'])
      color = f'C{i}'
      ax.plot([p['x'] for p in pts], [p['us_per_token'] for p in pts], 'o-', color=color,
              label=f'{v} measured')
      roof = [(p['x'], p['roofline_us_per_token']) for p in pts if p.get('roofline_us_per_token')]
      if roof:
        ax.plot(*zip(*roof), '--', color=color, alpha=0.7, label=f'{v} roofline')
    ax.set_xscale('log', base=2)
    ax.set_yscale('log')
    ax.set_xlabel(SWEEP_TITLES.get(name, name))
    ax.set_ylabel('decoder µs per token')
    ax.set_title(f'decoder cost vs {SWEEP_TITLES.get(name, name)}')
    ax.grid(alpha=0.3, which='both')
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


# --------------------------------------------------------------------------------------------------
# Everything.


def write_tables(results: str | Path, log: Log = print) -> list[Path]:
  """Read `results` (rows/*.json, bench.json), write tables.md, CSVs and PNGs there; returns the paths."""
  from mqa_repro.report import quality
  results = Path(results)
  results.mkdir(parents=True, exist_ok=True)
  bench = load_bench(results)
  run = results / 'run.json'
  run_info = json.loads(run.read_text()) if run.is_file() else {}
  run_info = (run_info.get('history') or [run_info])[-1]

  md = [f'# Reproduction of Shazeer (2019): `{results.name}`', '',
        "Cells are **ours (paper)**. Our models are smaller and trained on less (and different) data "
        "than the paper's: compare the *differences between rows* with the paper's, not the absolute "
        "numbers. BLEU: sacrebleu on detokenised text, `tok:intl` as in the paper (13a in the CSV files).",
        '']
  if run_info.get('provenance'):
    md += [f"Last `reproduce` invocation: {run_info.get('wall_seconds', 0) / 60:.1f} min wall time, "
           f"`{run_info['provenance'].get('command', '?')}`; speed benchmark: {run_info.get('bench', '?')}.",
           '']
  sections, written = quality.sections(results, log)
  md += sections['translate']
  if bench is not None:
    setting, lines, path = table2(bench, results)
    md += ['## Table 2 — amortized µs per output token (training; greedy and beam-4 encoder + decoder)', '']
    md += setting + [''] + lines + ['']
    kernels = kernel_table(bench)
    if kernels:
      md += ['### Decode attention alone (`mqa-repro bench --kernels`): µs per call (% of the roofline\'s '
             'bandwidth for the bytes it must move)', ''] + kernels + ['']
    md += lm_decode_table(bench)
    written.append(path)
  else:
    md += ['## Table 2', '', 'Not measured here (no bench.json; `mqa-repro bench` writes it).', '']
  md += sections['lm']
  if (results / 'learning_curves.png').is_file():
    md += ['## Learning curves', '', '![dev ln(PPL) during training, every run](learning_curves.png)', '']
  sweep = plot_bench_sweeps(bench, results / 'bench_sweeps.png') if bench else None
  if sweep:
    md += ['## Speed sweeps', '', '![decoder µs/token sweeps with the roofline](bench_sweeps.png)', '']
    md += sweep_table(bench) + ['']
    written.append(sweep)
  (results / 'tables.md').write_text('\n'.join(md), encoding='utf-8')
  return [results / 'tables.md'] + written


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  p = argparse.ArgumentParser(prog='mqa-repro tables', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--preset', help='read ./results/<preset>/, where `reproduce` writes by default')
  p.add_argument('--results', help='a results directory (rows/*.json, bench.json)')
  args = p.parse_args(argv)
  if not args.preset and not args.results:
    p.error('give --preset NAME or --results DIR')
  results = Path(args.results or Path('results') / args.preset)
  if not results.is_dir():
    print(f'mqa-repro tables: {results} does not exist (run `mqa-repro reproduce --preset ...` first)',
          file=sys.stderr)
    return 2
  for path in write_tables(results):
    print(path)
  return 0


if __name__ == '__main__':
  sys.exit(main())
