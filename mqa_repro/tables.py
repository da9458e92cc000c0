"""Results JSON -> the paper's Tables 1, 2 and 3 with our number beside the paper's, plus plots.

    mqa-repro tables --preset smoke            # reads results/smoke/
    mqa-repro tables --results DIR             # a preset's results directory (rows/*.json, bench.json)

Writes into that directory:
  tables.md                    every table, each cell ``ours (paper)``, with the scale, data and hardware
                               of our numbers stated above it (taken from the results' provenance);
  table1_<evalset>.csv, table2.csv, table3_<evalset>.csv
                               the same tables with our and the paper's numbers in separate columns;
  loss_curves.png              training loss per variant (WMT and LM panels);
  bench_sweeps.png             decoder µs/token against target length, batch and kv heads, with the
                               roofline (only when bench.json has sweeps).
Anything missing (a row not run, no bench.json) shows as "not run" beside the paper's number.

The paper's numbers are typed once, below, from PAPER.md (Shazeer 2019, Tables 1-3).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from mqa_repro import config as cfg

Log = Callable[[str], None]
NOT_RUN = 'not run'
REPO_ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------------
# The paper's numbers (None = not reported).

# row: (h, d_k = d_v, d_ff, ln(PPL) dev, BLEU dev, BLEU test greedy, BLEU test beam 4)
PAPER_TABLE1 = {
    'mha': (8, 128, 4096, 1.424, 26.7, 27.7, 28.4),
    'mqa': (8, 128, 5440, 1.439, 26.5, 27.5, 28.5),
    'mha_local': (8, 128, 4096, 1.427, 26.6, 27.5, 28.3),
    'mqa_local': (8, 128, 5440, 1.437, 26.5, 27.6, 28.2),
    'h1_dk128': (1, 128, 6784, 1.518, 25.8, None, None),
    'h2_dk64': (2, 64, 6784, 1.480, 26.2, 26.8, 27.9),
    'h4_dk32': (4, 32, 6784, 1.488, 26.1, None, None),
    'h8_dk16': (8, 16, 6784, 1.513, 25.8, None, None),
}
# variant: µs per output token (training, greedy encoder, greedy decoder, beam-4 encoder, beam-4 decoder)
PAPER_TABLE2 = {
    'mha': (13.2, 1.7, 46.0, 2.0, 203.0),
    'mqa': (13.0, 1.5, 3.8, 1.6, 32.0),
    'mha_local': (13.2, 1.7, 23.0, 1.9, 47.0),
    'mqa_local': (13.0, 1.5, 3.3, 1.6, 16.0),
}
PAPER_TABLE2_SETTING = ('TPUv2 (8 cores), batch 1024, source and target length 128; training steps of '
                        '32,768 + 32,768 tokens')
# row: (h, d_k = d_v, d_ff, dev perplexity per word)
PAPER_TABLE3 = {
    'mha': (8, 128, 8192, 29.9),
    'mqa': (8, 128, 9088, 30.2),
    'h1_dk128': (1, 128, 9984, 31.2),
    'h2_dk64': (2, 64, 9984, 31.1),
    'h4_dk32': (4, 32, 9984, 31.0),
    'h8_dk16': (8, 16, 9984, 30.9),
}
SOURCE_TEXT = {'offline': 'the offline corpus (package-registry text, not WMT14 / lm1b)',
               'text': 'small real files under $MQA_REPRO_DATA',
               'tfds': 'TensorFlow Datasets wmt14_translate/de-en / lm1b'}
PAPER_PARAMS = {'translate': '211M', 'lm': '192M'}
PAPER_TRAINING = {'translate': '100k steps × 128 × (256 + 256) tokens, WMT14 en-de, 32-core TPUv3',
                  'lm': '136k steps × 256 × 256 tokens, lm1b, 32-core TPUv3'}


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


def fmt_ppl(x: float | None) -> str:
  """Perplexities: one decimal, or 3 significant digits in e-notation once they are huge (untrained)."""
  if x is None or not math.isfinite(x):
    return '–'
  return f'{x:.1f}' if x < 1e5 else f'{x:.3g}'


def cell(ours: str, paper: str) -> str:
  return f'{ours} ({paper})'


def params_text(n: int | None) -> str:
  if n is None:
    return '–'
  return f'{n / 1e6:.0f}M' if n >= 1e7 else f'{n / 1e6:.2f}M'


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
  return lines


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
  with open(path, 'w', newline='', encoding='utf-8') as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows([['' if v is None else v for v in r] for r in rows])
  return path


# --------------------------------------------------------------------------------------------------
# Reading results.


def load_rows(results: Path) -> dict[str, list[dict]]:
  """rows/*.json grouped by task, in table order (paper rows first, then ours)."""
  by_task: dict[str, list[dict]] = {'translate': [], 'lm': []}
  for f in sorted((results / 'rows').glob('*.json')):
    r = json.loads(f.read_text(encoding='utf-8'))
    by_task.setdefault(r['task'], []).append(r)
  for task, rows in by_task.items():
    order = list(cfg.ROWS.get(task, {}))
    rows.sort(key=lambda r: (order.index(r['row']) if r['row'] in order else len(order), r['name']))
  return by_task


def load_bench(results: Path) -> dict | None:
  f = results / 'bench.json'
  return json.loads(f.read_text(encoding='utf-8')) if f.is_file() else None


def _distinct(values: Iterable[Any]) -> str:
  out: list[str] = []
  for v in values:
    if str(v) not in out:
      out.append(str(v))
  return ' / '.join(out) if out else '–'


def _eval_groups(rows: list[dict]) -> list[tuple[str, str]]:
  """(key, description) of every eval set the rows were scored on, first-seen order."""
  seen: dict[str, str] = {}
  for r in rows:
    for key, g in r.get('evals', {}).items():
      seen.setdefault(key, g.get('description', key))
  return list(seen.items())


def _setting_lines(task: str, rows: list[dict], group: str | None) -> list[str]:
  """Scale, data and hardware of our numbers, from the rows' own records and provenance."""
  if not rows:
    return ['*Ours: not run.*']
  prov = [r.get('provenance', {}) for r in rows]
  m = rows[0]['model']
  layers = (f"{m['layers'][0]}+{m['layers'][1]} layers" if task == 'translate'
            else f"{m['layers'][1]} layers")
  t = rows[0]['train']
  tokens = f"{t['batch_size']} × {t['max_length']}" + (f" + {t['batch_size']} × {t['max_length']}"
                                                        if task == 'translate' else '')
  lines = [
      f"- **Scale**: size `{_distinct(r['size'] for r in rows)}`: d_model {m['d_model']}, {layers}, "
      f"{_distinct(params_text(r['params']) for r in rows)} parameters per row (paper "
      f"{PAPER_PARAMS[task]}); {_distinct(r['train']['steps'] for r in rows)} steps × {tokens} tokens "
      f"(paper: {PAPER_TRAINING[task]}); peak learning rate "
      f"{_distinct(r['train'].get('recipe', {}).get('learning_rate', '?') for r in rows)} (paper 0.01).",
      f"- **Training data**: {_distinct(SOURCE_TEXT.get(r['data']['source'], r['data']['source']) for r in rows)}"
      f" (at most {_distinct(r['data']['max_train_examples'] or 'all' for r in rows)} training examples"
      f" read), "
      f"vocabulary {_distinct(r['data']['vocab_pieces'] for r in rows)} SentencePiece pieces.",
  ]
  if group:
    splits = []
    for role in ('dev', 'test'):
      names = _distinct(r['evals'][group][role]['name'] for r in rows
                        if group in r.get('evals', {}) and role in r['evals'][group])
      sizes = _distinct(r['evals'][group][role]['sentences'] for r in rows
                        if group in r.get('evals', {}) and role in r['evals'][group])
      if names != '–':
        splits.append(f'{role} = {names} ({sizes} sentences)')
    lines.append(f"- **Evaluation**: {'; '.join(splits)}.")
  devices = _distinct(f"{p.get('device_count', '?')} × {p.get('device_kind', '?')}" for p in prov)
  lines.append(
      f"- **Hardware / code**: {devices}, "
      f"jax {_distinct(p.get('versions', {}).get('jax') for p in prov)}, commit "
      f"{_distinct(str(p.get('git_commit', '?'))[:10] + (' (dirty)' if p.get('git_dirty') else '') for p in prov)}, "
      f"{_distinct(str(p.get('date_utc', '?'))[:10] for p in prov)}, preset "
      f"`{_distinct(p.get('preset') for p in prov)}`.")
  return lines


def _bleu(split: dict | None, decoding: str, tok: str = 'intl') -> float | None:
  try:
    return split['bleu'][decoding][tok]['score']
  except (KeyError, TypeError):
    return None


def _signatures(rows: list[dict], group: str) -> list[str]:
  sigs: list[str] = []
  for r in rows:
    for role in ('dev', 'test'):
      for dec in r.get('evals', {}).get(group, {}).get(role, {}).get('bleu', {}).values():
        for tok in dec.values():
          if tok.get('signature') and tok['signature'] not in sigs:
            sigs.append(tok['signature'])
  return sigs


# --------------------------------------------------------------------------------------------------
# Table 1 (WMT) and Table 3 (LM).


def _table_rows(task: str, rows: list[dict], paper: dict) -> list[tuple[str, dict | None, tuple | None]]:
  """(row name, our result or None, the paper's numbers or None): the paper's rows, then extra ones."""
  ours = {r['row']: r for r in rows}
  names = list(paper) + [n for n in ours if n not in paper]
  return [(n, ours.get(n), paper.get(n)) for n in names]


def _label(task: str, name: str) -> str:
  row = cfg.ROWS[task].get(name)
  return row.label if row else name


def table1(rows: list[dict], group: str | None, out_dir: Path) -> tuple[list[str], Path]:
  header = ['attention', 'h', 'd_k, d_v', 'd_ff', 'params', 'ln(PPL) dev', 'BLEU dev',
            'BLEU test beam 1 / 4']
  csv_header = ['row', 'attention', 'h', 'h_paper', 'd_k', 'd_k_paper', 'd_ff', 'd_ff_paper', 'params',
                'ln_ppl_dev', 'ln_ppl_dev_paper', 'bleu_dev_greedy', 'bleu_dev_greedy_13a',
                'bleu_dev_paper', 'bleu_test_greedy', 'bleu_test_greedy_13a', 'bleu_test_greedy_paper',
                'bleu_test_beam4', 'bleu_test_beam4_13a', 'bleu_test_beam4_paper', 'dev_set',
                'dev_sentences', 'test_set', 'test_sentences']
  md, csv_rows = [], []
  for name, r, p in _table_rows('translate', rows, PAPER_TABLE1):
    p = p or (None,) * 7
    ph, pk, pff, pppl, pdev, pg, pb = p
    paper_test = f'{fmt(pg, 1)} / {fmt(pb, 1)}' if pg is not None else '–'
    ev = (r or {}).get('evals', {}).get(group) if group else None
    if r is None or ev is None:
      md.append([_label('translate', name), f'– ({fmt(ph)})', f'– ({fmt(pk)})', f'– ({fmt(pff)})', '–',
                 cell(NOT_RUN, fmt(pppl, 3)), cell(NOT_RUN, fmt(pdev, 1)), cell(NOT_RUN, paper_test)])
      csv_rows.append([name, _label('translate', name), None, ph, None, pk, None, pff, None, None, pppl,
                       None, None, pdev, None, None, pg, None, None, pb, None, None, None, None])
      continue
    m, dev, test = r['model'], ev.get('dev'), ev.get('test')
    ours_test = f"{fmt(_bleu(test, 'greedy'))} / {fmt(_bleu(test, 'beam4'))}"
    md.append([r['label'], cell(fmt(m['h']), fmt(ph)), cell(fmt(m['d_k']), fmt(pk)),
               cell(fmt(m['d_ff']), fmt(pff)), params_text(r['params']),
               cell(fmt((dev or {}).get('ln_ppl'), 3), fmt(pppl, 3)),
               cell(fmt(_bleu(dev, 'greedy')), fmt(pdev, 1)), cell(ours_test, paper_test)])
    csv_rows.append([name, r['label'], m['h'], ph, m['d_k'], pk, m['d_ff'], pff, r['params'],
                     (dev or {}).get('ln_ppl'), pppl, _bleu(dev, 'greedy'), _bleu(dev, 'greedy', '13a'),
                     pdev, _bleu(test, 'greedy'), _bleu(test, 'greedy', '13a'), pg, _bleu(test, 'beam4'),
                     _bleu(test, 'beam4', '13a'), pb, (dev or {}).get('name'),
                     (dev or {}).get('sentences'), (test or {}).get('name'), (test or {}).get('sentences')])
  path = _write_csv(out_dir / f"table1_{group or 'none'}.csv", csv_header, csv_rows)
  return _md_table(header, md), path


def table3(rows: list[dict], group: str | None, out_dir: Path) -> tuple[list[str], Path]:
  header = ['attention', 'h', 'd_k, d_v', 'd_ff', 'params', 'dev PPL (per word)', 'dev ln(PPL) per subword']
  csv_header = ['row', 'attention', 'h', 'h_paper', 'd_k', 'd_k_paper', 'd_ff', 'd_ff_paper', 'params',
                'dev_word_ppl', 'dev_word_ppl_paper', 'dev_ln_ppl_subword', 'dev_set', 'dev_sentences',
                'dev_words']
  md, csv_rows = [], []
  for name, r, p in _table_rows('lm', rows, PAPER_TABLE3):
    ph, pk, pff, pppl = p or (None,) * 4
    dev = ((r or {}).get('evals', {}).get(group) or {}).get('dev') if group else None
    if r is None or dev is None:
      md.append([_label('lm', name), f'– ({fmt(ph)})', f'– ({fmt(pk)})', f'– ({fmt(pff)})', '–',
                 cell(NOT_RUN, fmt(pppl, 1)), NOT_RUN])
      csv_rows.append([name, _label('lm', name), None, ph, None, pk, None, pff, None, None, pppl, None,
                       None, None, None])
      continue
    m = r['model']
    md.append([r['label'], cell(fmt(m['h']), fmt(ph)), cell(fmt(m['d_k']), fmt(pk)),
               cell(fmt(m['d_ff']), fmt(pff)), params_text(r['params']),
               cell(fmt_ppl(dev.get('word_ppl')), fmt(pppl, 1)), fmt(dev.get('ln_ppl'), 3)])
    csv_rows.append([name, r['label'], m['h'], ph, m['d_k'], pk, m['d_ff'], pff, r['params'],
                     dev.get('word_ppl'), pppl, dev.get('ln_ppl'), dev.get('name'), dev.get('sentences'),
                     dev.get('words')])
  path = _write_csv(out_dir / f"table3_{group or 'none'}.csv", csv_header, csv_rows)
  return _md_table(header, md), path


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
    label = (e or {}).get('label') or _label('translate', variant)
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


def _pyplot():
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt


def plot_loss_curves(by_task: dict[str, list[dict]], path: Path) -> Path:
  plt = _pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  for ax, task, title in ((axes[0], 'translate', 'WMT (Table 1 rows)'), (axes[1], 'lm', 'LM (Table 3 rows)')):
    rows = [r for r in by_task.get(task, []) if r.get('train', {}).get('loss_curve')]
    for r in rows:
      steps, losses = zip(*r['train']['loss_curve'])
      m = r['model']
      local = ' local' if m.get('window') else ''
      ax.plot(steps, losses, label=f"{r['row']}: h={m['h']} g={m['g']} d_k={m['d_k']}{local}", lw=1.3)
    ax.set_title(title)
    ax.set_xlabel('step')
    ax.set_ylabel('training loss' + (' (label-smoothed, + z-loss)' if task == 'translate' else ' (+ z-loss)'))
    ax.grid(alpha=0.3)
    if rows:
      ax.legend(fontsize=7)
    else:
      ax.text(0.5, 0.5, NOT_RUN, ha='center', va='center', transform=ax.transAxes)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


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
  results = Path(results)
  results.mkdir(parents=True, exist_ok=True)
  by_task, bench = load_rows(results), load_bench(results)
  written: list[Path] = []
  run = results / 'run.json'
  run_info = json.loads(run.read_text()) if run.is_file() else {}

  md = [f'# Reproduction of Shazeer (2019), preset `{results.name}`', '',
        'Each cell is **ours (paper)**. Our models are far smaller and trained on far less (and '
        'different) data than the paper\'s: compare the *differences between rows* with the paper\'s, '
        'not the absolute numbers. "not run" = no result for that row yet. BLEU: sacrebleu on '
        'detokenised text, `tok:intl` as in the paper (13a in the CSV files).', '']
  if run_info:
    md += [f"Last `reproduce` run: {run_info.get('wall_seconds', 0) / 60:.1f} min wall time, "
           f"`{run_info.get('provenance', {}).get('command', '?')}`; speed benchmark: "
           f"{run_info.get('bench', '?')}.", '']

  groups = _eval_groups(by_task['translate']) or [(None, None)]
  for n, (group, description) in enumerate(groups):
    suffix = chr(ord('a') + n) if len(groups) > 1 else ''
    lines, path = table1(by_task['translate'], group, results)
    md += [f'## Table 1{suffix} — WMT14 EN→DE' + (f': {description}' if description else ''), '']
    md += _setting_lines('translate', by_task['translate'], group) + ['']
    md += lines + ['']
    sigs = _signatures(by_task['translate'], group) if group else []
    if sigs:
      md += ['BLEU signatures: ' + '; '.join(f'`{s}`' for s in sigs), '']
    written.append(path)

  setting, lines, path = table2(bench, results)
  md += ['## Table 2 — amortized µs per output token (training; greedy and beam-4 encoder + decoder)', '']
  md += setting + [''] + lines + ['']
  kernels = kernel_table(bench or {})
  if kernels:
    md += ['### Decode attention alone (`mqa-repro bench --kernels`): µs per call (% of the roofline\'s '
           'bandwidth for the bytes it must move)', ''] + kernels + ['']
  md += lm_decode_table(bench or {})
  written.append(path)

  groups = _eval_groups(by_task['lm']) or [(None, None)]
  for n, (group, description) in enumerate(groups):
    suffix = chr(ord('a') + n) if len(groups) > 1 else ''
    lines, path = table3(by_task['lm'], group, results)
    md += [f'## Table 3{suffix} — Billion-Word LM, perplexity per word' +
           (f': {description}' if description else ''), '']
    md += _setting_lines('lm', by_task['lm'], group) + [''] + lines + ['']
    written.append(path)

  md += ['## Plots', '', '![training loss per variant](loss_curves.png)', '']
  written.append(plot_loss_curves(by_task, results / 'loss_curves.png'))
  sweep = plot_bench_sweeps(bench, results / 'bench_sweeps.png') if bench else None
  if sweep:
    md += ['![decoder µs/token sweeps with the roofline](bench_sweeps.png)', '']
    md += sweep_table(bench) + ['']
    written.append(sweep)
  else:
    md += ['Speed sweeps: not run (no sweeps in bench.json).', '']
  (results / 'tables.md').write_text('\n'.join(md), encoding='utf-8')
  return [results / 'tables.md'] + written


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  p = argparse.ArgumentParser(prog='mqa-repro tables', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--preset', help='read results/<preset>/ (with --results: DIR/<preset>/)')
  p.add_argument('--results', help="a preset's results directory (rows/*.json, bench.json)")
  args = p.parse_args(argv)
  if not args.preset and not args.results:
    p.error('give --preset NAME or --results DIR')
  if args.preset:
    results = Path(args.results or REPO_ROOT / 'results') / args.preset
  else:
    results = Path(args.results)
  if not results.is_dir():
    print(f'mqa-repro tables: {results} does not exist (run `mqa-repro reproduce --preset ...` first)',
          file=sys.stderr)
    return 2
  for path in write_tables(results):
    print(path)
  return 0


if __name__ == '__main__':
  sys.exit(main())
