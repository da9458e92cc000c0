"""Table 2 and the other speed sections of tables.md, from bench.json (mqa_repro.bench): the paper's
Table 2 beside ours with the roofline fractions, the decode-attention kernels, LM decoding beside
its peers, and the sweeps (table and plot).
"""

from __future__ import annotations

from pathlib import Path

from mqa_repro import config as cfg
from mqa_repro.experiment import PAPER_TABLE2, PAPER_TABLE2_SETTING
from mqa_repro.report.format import fmt, fmt_sig, md_table, pyplot, write_csv
from mqa_repro.report.records import BenchRecord

NOT_RUN = 'not run'


def cell(ours: str, paper: str) -> str:
  return f'{ours} ({paper})'


# --------------------------------------------------------------------------------------------------
# Table 2 (speed, from bench.json).

T2_KEYS = ('train_us_per_token', 'greedy_encoder_us_per_token', 'greedy_decoder_us_per_token',
           'beam_encoder_us_per_token', 'beam_decoder_us_per_token')


def table2(bench: BenchRecord | None, out_dir: Path) -> tuple[list[str], list[str], Path]:
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
  path = write_csv(out_dir / 'table2.csv', csv_header, csv_rows)

  setting: list[str] = []
  if bench is None:
    setting.append('*Ours: not run (no bench.json; `mqa-repro bench` or `mqa-repro reproduce` writes it).*')
  else:
    s, hw, prov = bench.get('setting', {}), bench.get('hardware', {}), bench.get('provenance', {})
    setting.append(f"- **Setting**: size `{s.get('size', '?')}`, batch {s.get('batch', '?')}, source length "
                   f"{s.get('source_len', '?')}, target length {s.get('target_len', '?')}, beam "
                   f"{s.get('beam', '?')} (paper: {PAPER_TABLE2_SETTING}).")
    setting.append(f"- **Hardware**: {hw.get('device', prov.get('device_kind', '?'))}; measured copy "
                   f"bandwidth {fmt_sig(hw.get('copy_GBps'))} GB/s, matmul {fmt_sig(hw.get('matmul_TFLOPs'))} "
                   f"TFLOP/s" + (f"; the roofline's ceilings {fmt_sig(hw['ceiling_GBps'])} GB/s "
                                 f"({hw['ceiling_basis']['bandwidth']}), {fmt_sig(hw['ceiling_TFLOPs'])} "
                                 f"TFLOP/s ({hw['ceiling_basis']['matmul']})."
                                 if 'ceiling_basis' in hw else " (the roofline's inputs)."))
    if prov:
      setting.append(f"- **Code**: commit {str(prov.get('git_commit', '?'))[:10]}, jax "
                     f"{prov.get('versions', {}).get('jax', '?')}, "
                     f"{str(prov.get('date_utc', '?'))[:10]}.")
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
  return setting, md_table(header, md), path


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
  return md_table(['case', 'XLA einsums', "Pallas (the run's defaults)", 'Pallas (best)', 'best tuning'], rows)


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
  return lines + [''] + md_table(header, rows) + ['']


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
  return md_table(['sweep', 'variant', 'x', 'µs/token', 'roofline µs/token', 'fraction'], rows)


def plot_bench_sweeps(bench: dict, path: Path) -> Path | None:
  sweeps = {k: v for k, v in (bench.get('sweeps') or {}).items() if v}
  if not sweeps:
    return None
  plt = pyplot()
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
