"""Results -> tables.md, CSV files and plots: Tables 1 and 3 (report/quality.py) and the speed
sections (report/speed.py), each beside the paper's numbers.

Writes into the results directory:
  tables.md                    every table, with the scale, data, recipe and hardware of our numbers
                               stated above it (from the results' records and provenance): Tables 1
                               and 3 with each cell ``ours (paper)`` and each row's difference from
                               multi-head against the seed noise; Table 2 with each row's device,
                               batch and lengths, the paper's TPUv2 numbers in a table of their own
                               and only when ours ran on an accelerator (on a CPU: marked a pipeline
                               check, no paper numbers);
  table1_<evalset>.csv, table3_<evalset>.csv, runs_table*_<evalset>.csv, table2.csv
                               the same with ours (mean, std over seeds) and the paper's in separate
                               columns, and every run's own numbers;
  quality_wmt.png, quality_lm.png, learning_curves.png, bench_sweeps.png
                               per-row quality with every seed, every run's dev curve, and the
                               decoder sweeps with the roofline (only when bench.json has sweeps).
A table section appears only for what was run; the paper rows not run are listed by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from mqa_repro.report import records
from mqa_repro.report.speed import (LM_PROFILE, TRAIN_FUSED, kernel_table, lm_decode_table,
                                    lm_profile_table, on_accelerator, plot_bench_sweeps, sweep_table,
                                    table2, table2_profile_table, train_fused_lines)

Log = Callable[[str], None]


# A results folder's written reading (hand-written prose), shown at the top of its tables.md; every
# decimal number in it must appear in the folder's generated files (tests/test_readme.py checks).
READING = 'reading.md'


def write_tables(results: str | Path, log: Log = print) -> list[Path]:
  """Read `results` (rows/*.json, bench.json), write tables.md, CSVs and PNGs there; returns the paths."""
  from mqa_repro.report import quality
  results = Path(results)
  results.mkdir(parents=True, exist_ok=True)
  bench = records.load_bench(results)
  run_info = (records.load_history(results)['history'] or [{}])[-1]

  md = [f'# Reproduction of Shazeer (2019): `{results.name}`', '',
        "Quality cells are **ours (paper)**. Our models are smaller and trained on less (and different) data "
        "than the paper's: compare the *differences between rows* with the paper's, not the absolute "
        "numbers. BLEU: sacrebleu on detokenised text, `tok:intl` as in the paper (13a in the CSV files).",
        '']
  if run_info.get('provenance'):
    cut = '' if run_info.get('finished', True) else (
        ', **cut short** (the process ended without finishing; its runs so far: '
        + (', '.join(f'{n} {s}' for n, s in run_info.get('runs', {}).items()) or 'none') + ')')
    md += [f"Last `reproduce` invocation: {run_info.get('wall_seconds', 0) / 60:.1f} min wall time, "
           f"`{run_info['provenance'].get('command', '?')}`{cut}; speed benchmark: "
           f"{run_info.get('bench', '?')}.", '']
  reading = results / READING
  if reading.is_file():
    md += ['## Reading', '', reading.read_text(encoding='utf-8').strip(), '']
  sections, written = quality.sections(results, log)
  md += sections['translate']
  if bench is not None:
    setting, lines, path = table2(bench, results)
    md += ['## Table 2 — amortized µs per output token (training; greedy and beam-4 encoder + decoder)'
           + ('' if on_accelerator(bench) else ': CPU pipeline check, not a speed result'), '']
    md += setting + [''] + lines + ['']
    kernels = kernel_table(bench)
    if kernels:
      md += ['### Decode attention alone (`mqa-repro bench --kernels`): µs per call (% of the roofline\'s '
             'bandwidth for the bytes it must move)', ''] + kernels + ['']
    md += table2_profile_table(bench)
    md += lm_decode_table(bench)
    md += lm_profile_table(records.read_json(results / LM_PROFILE))
    fused = train_fused_lines(bench, records.read_json(results / TRAIN_FUSED))
    md += fused + [''] if fused else []
    written.append(path)
  else:
    md += ['## Table 2', '', 'Not measured here (no bench.json; `mqa-repro bench` writes it).', '']
  md += sections['lm']
  if (results / 'learning_curves.png').is_file():
    md += ['## Learning curves', '', '![ln(PPL) during training, every run](learning_curves.png)', '']
  sweep = plot_bench_sweeps(bench, results / 'bench_sweeps.png') if bench else None
  if sweep:
    md += ['## Speed sweeps', '', '![decoder µs/token sweeps with the roofline](bench_sweeps.png)', '']
    md += sweep_table(bench) + ['']
    written.append(sweep)
  (results / 'tables.md').write_text('\n'.join(md), encoding='utf-8')
  return [results / 'tables.md'] + written
