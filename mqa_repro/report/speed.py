"""Table 2 and the other speed sections of tables.md, from bench.json (mqa_repro.bench): our Table 2
rows (each with its device, batch and lengths, and the roofline fractions), the paper's TPUv2 Table 2 in
a table of its own when ours ran on an accelerator (on a CPU: a pipeline check, no paper numbers), the
decode-attention kernels, LM decoding beside its peers, and the sweeps (table and plot). A time below
its own roofline is flagged wherever a fraction is printed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mqa_repro import config as cfg
from mqa_repro import costs
from mqa_repro.experiment import PAPER_TABLE2, PAPER_TABLE2_SETTING
from mqa_repro.report.format import fmt, fmt_sig, md_table, pyplot, save_figure, write_csv
from mqa_repro.report.records import BenchRecord

T2_KEYS = ('train_us_per_token', 'greedy_encoder_us_per_token', 'greedy_decoder_us_per_token',
           'beam_encoder_us_per_token', 'beam_decoder_us_per_token')

# A measured time below its own roofline is not a result: the ceiling it divides by, or the bytes and
# FLOPs counted for it, are wrong for that point. Every fraction printed goes through `fraction`.
OVER_ROOFLINE = '⚠'
OVER_ROOFLINE_NOTE = (f'{OVER_ROOFLINE} marks a time below its own roofline (fraction above 1): the ceiling '
                      f'or the bytes / FLOPs counted for that point are wrong, so it is not a result.')
CPU_NOTE = ('**CPU: pipeline check, not a speed result.** These timings were taken on a CPU, at a '
            'setting sized for it; they show that the benchmark runs end to end, not how fast multi-query '
            "decoding is. The paper's TPUv2 figures are therefore not set beside them.")
# The old H100 runs divided by ceilings they measured themselves; their datasheet-based fractions:
RELABELLED = 'h100_relabelled.json'
RELABEL_POINTER = ('docs/speed.md ("History: one H100 80GB") and results/gpu/h100_relabelled.json '
                   '(`python scripts/relabel_h100.py`)')


def over_roofline(x: float | None) -> bool:
  return x is not None and math.isfinite(x) and x > 1.0


def fraction(x: float | None) -> str:
  """A roofline fraction, flagged when the time beat its own roofline (never a silent > 100%)."""
  return f'{fmt(x)} {OVER_ROOFLINE}' if over_roofline(x) else fmt(x)


def platform_of(bench: BenchRecord | dict | None) -> str:
  """'cpu', 'gpu', 'tpu' ... of the device the benchmark ran on; '?' when the record does not say."""
  hw, prov = (bench or {}).get('hardware', {}), (bench or {}).get('provenance', {})
  platform = hw.get('platform') or prov.get('platform')
  if not platform:
    device = str(hw.get('device') or prov.get('device') or prov.get('device_kind') or '')
    platform = 'cpu' if device.lower() == 'cpu' else '?'
  return str(platform).lower()


def on_accelerator(bench: BenchRecord | dict | None) -> bool:
  """Whether the timings are from an accelerator (only then are they a speed result, and only then
  are the paper's TPUv2 numbers shown, in their own table). Unknown counts as not."""
  return platform_of(bench) not in ('cpu', '?')


def device_text(bench: BenchRecord | dict | None) -> str:
  hw, prov = (bench or {}).get('hardware', {}), (bench or {}).get('provenance', {})
  device = hw.get('device') or prov.get('device') or prov.get('device_kind') or '?'
  count = hw.get('device_count') or prov.get('device_count') or 1
  text = f'{count} × {device}' if count and count != 1 else str(device)
  return text + (' (CPU)' if platform_of(bench) == 'cpu' and str(device).lower() != 'cpu' else '')


def self_measured_ceilings(hw: dict) -> bool:
  """Whether the roofline divided by ceilings the run measured itself (records from before the
  datasheet comparison have no `ceiling_basis`; newer ones say 'measured ...' where the probe won)."""
  basis = hw.get('ceiling_basis')
  return basis is None or any(str(b).startswith('measured') for b in basis.values())


def ceilings_line(bench: BenchRecord | dict) -> str:
  """What the roofline's ceilings were and where they came from."""
  hw = bench.get('hardware', {})
  measured = (f"measured copy bandwidth {fmt_sig(hw.get('copy_GBps'))} GB/s, matmul "
              f"{fmt_sig(hw.get('matmul_TFLOPs'))} TFLOP/s")
  if 'ceiling_basis' in hw:
    text = (f"{measured}; the roofline's ceilings {fmt_sig(hw.get('ceiling_GBps'))} GB/s "
            f"({hw['ceiling_basis'].get('bandwidth', '?')}), {fmt_sig(hw.get('ceiling_TFLOPs'))} TFLOP/s "
            f"({hw['ceiling_basis'].get('matmul', '?')})")
  else:
    text = f"{measured}: the roofline divides by these, **this run's own measured ceilings**, not the datasheet"
  if self_measured_ceilings(hw) and on_accelerator(bench):
    sheet = costs.datasheet(str(hw.get('device', '')))
    if sheet:
      text += (f" (datasheet {sheet['name']}: {sheet['hbm_GBps']} GB/s, {sheet['bf16_TFLOPs']} TFLOP/s; a "
               f"ceiling below the device's real one overstates every fraction)")
    if 'H100' in str(hw.get('device', '')):
      text += f'. Fractions against the datasheet for these H100 runs: {RELABEL_POINTER}'
  return text + '.'


def _relabelled(out_dir: Path) -> list[dict]:
  """The rows of `out_dir`/h100_relabelled.json (scripts/relabel_h100.py), [] when there is none."""
  path = out_dir / RELABELLED
  if not path.is_file():
    return []
  return json.loads(path.read_text(encoding='utf-8')).get('rows', [])


def _relabel(rows: list[dict], variant: str, impl: str, kind: str, us: float | None) -> dict | None:
  """The relabelled row of this variant and path whose `kind` ('greedy' / 'beam') timing is `us`
  (the same measurement, whichever file it was merged from), or None."""
  if not us:
    return None
  return next((r for r in rows if r['variant'] == variant and r.get('attention_impl', 'xla') == impl
               and r.get(f'{kind}_us_per_token') and abs(r[f'{kind}_us_per_token'] - us) <= 1e-9 * us), None)


def _paper_setting_differs(s: dict) -> bool:
  return (s.get('batch'), s.get('source_len'), s.get('target_len'), s.get('beam')) != (1024, 128, 128, 4)


def table2(bench: BenchRecord | None, out_dir: Path) -> tuple[list[str], list[str], Path]:
  """(setting lines, table lines, csv path): our Table 2 rows, each with its device, batch and lengths;
  on an accelerator the paper's TPUv2 Table 2 follows in a table of its own, on a CPU it is not shown."""
  bench = bench or {}
  s, hw, prov = bench.get('setting', {}), bench.get('hardware', {}), bench.get('provenance', {})
  accel = on_accelerator(bench)
  device = device_text(bench)
  impl = s.get('attention_impl', 'xla')
  relabelled = _relabelled(out_dir) if accel else {}
  ours = {e['variant']: e for e in bench.get('table2', [])}
  header = ['attention', 'device', 'batch: greedy / beam (× width)', 'source / target length',
            'training batch × length', 'training', 'greedy enc. + dec.', 'beam-4 enc. + dec.',
            'fraction of the roofline, greedy / beam' + (' (datasheet [own ceilings])' if relabelled else '')]
  csv_header = (['variant', 'attention', 'device', 'platform', 'speed_result', 'attention_impl', 'batch',
                 'beam_batch', 'beam', 'source_len', 'target_len', 'train_batch', 'train_len']
                + list(T2_KEYS) + ['greedy_roofline_fraction', 'beam_roofline_fraction', 'above_roofline',
                                   'ceilings', 'greedy_roofline_fraction_datasheet',
                                   'beam_roofline_fraction_datasheet'] + [k + '_paper_tpuv2' for k in T2_KEYS])
  md, csv_rows, flagged = [], [], False
  for variant in [v for v in PAPER_TABLE2 if v in ours] + [v for v in ours if v not in PAPER_TABLE2]:
    e = ours[variant]
    label = e.get('label') or cfg.ROWS['translate'][variant].label
    vals = [e.get(k) for k in T2_KEYS]
    fg, fb = e.get('greedy_roofline_fraction'), e.get('beam_roofline_fraction')
    over = over_roofline(fg) or over_roofline(fb)
    roof = f'{fraction(fg)} / {fraction(fb)}'
    rg = rb = None
    if relabelled:
      rg = (_relabel(relabelled, variant, impl, 'greedy', vals[2]) or {}).get('greedy_fraction')
      rb = (_relabel(relabelled, variant, impl, 'beam', vals[4]) or {}).get('beam_fraction')
      over |= over_roofline(rg) or over_roofline(rb)
      roof = f'{fraction(rg)} / {fraction(rb)} [{roof}]'
    flagged |= over
    beam_b, width = e.get('beam_batch', s.get('beam_batch')), e.get('beam_size', s.get('beam'))
    train = (f"{e['train_batch']} × ({e['train_len']} + {e['train_len']})" if e.get('train_batch') else '–')
    md.append([label, device, f"{s.get('batch', '?')} / {beam_b if beam_b is not None else '?'} (× {width or '?'})",
               f"{s.get('source_len', '?')} / {s.get('target_len', '?')}", train, fmt_sig(vals[0]),
               f'{fmt_sig(vals[1])} + {fmt_sig(vals[2])}', f'{fmt_sig(vals[3])} + {fmt_sig(vals[4])}', roof])
    paper = PAPER_TABLE2.get(variant) if accel else None
    csv_rows.append([variant, label, device, platform_of(bench), accel, impl, s.get('batch'), beam_b, width,
                     s.get('source_len'), s.get('target_len'), e.get('train_batch'), e.get('train_len')]
                    + vals + [fg, fb, over, 'datasheet' if not self_measured_ceilings(hw) else 'self-measured', rg, rb]
                    + list(paper or (None,) * len(T2_KEYS)))
  path = write_csv(out_dir / 'table2.csv', csv_header, csv_rows)

  setting: list[str] = []
  if not accel:
    setting += [CPU_NOTE, '']
  setting.append(f"- **Setting**: size `{s.get('size', '?')}`, greedy batch {s.get('batch', '?')}, beam batch "
                 f"{s.get('beam_batch', '?')} × width {s.get('beam', '?')}, source length "
                 f"{s.get('source_len', '?')}, target length {s.get('target_len', '?')}, bf16 weights and "
                 f"activations, random weights, EOS masked (every sequence decodes all T steps), "
                 f"`--attention-impl {impl}`; µs per output token (training: per target token).")
  setting.append(f'- **Hardware**: {device}; ' + ceilings_line(bench))
  if prov:
    setting.append(f"- **Code**: commit {str(prov.get('git_commit', '?'))[:10]}, jax "
                   f"{prov.get('versions', {}).get('jax', prov.get('jax', '?'))}, "
                   f"{str(prov.get('date_utc', '?'))[:10]}.")
  impls = sorted({k[len('greedy_decoder_us_per_token_'):] for e in ours.values() for k in e
                  if k.startswith('greedy_decoder_us_per_token_')})
  for alt in [''] + impls:
    ratios, sfx = [], f'_{alt}' if alt else ''
    for kind, key, pk in (('greedy', 'greedy_decoder_us_per_token', 2),
                          ('beam-4', 'beam_decoder_us_per_token', 4)):
      a, b = (ours.get('mha') or {}).get(key + sfx), (ours.get('mqa') or {}).get(key + sfx)
      if a and b:
        paper = (f' (paper, TPUv2: {PAPER_TABLE2["mha"][pk] / PAPER_TABLE2["mqa"][pk]:.1f}×)'
                 if accel else '')
        ratios.append(f'{kind} {a / b:.1f}×{paper}')
    if ratios:
      path_note = f' with `--attention-impl {alt}`' if alt else ''
      setting.append(f"- **Multi-head / multi-query decoder time{path_note}**: {', '.join(ratios)}"
                     + ('' if accel else ' (CPU, not a speed result)') + '.')
  own = ' [against its own ceilings]' if relabelled else ''
  seq = []
  for v, e in ours.items():
    if not e.get('greedy_sequential_roofline_us_per_token'):
      continue
    text = (f"{fmt_sig(e['greedy_sequential_roofline_us_per_token'])} "
            f"({fraction(e.get('greedy_sequential_roofline_fraction'))})")
    r = _relabel(relabelled, v, impl, 'greedy', e.get('greedy_decoder_us_per_token'))
    if r and r.get('greedy_sequential_fraction'):
      text = (f"{fmt_sig(r['greedy_sequential_roofline_us_per_token'])} "
              f"({fraction(r['greedy_sequential_fraction'])}) [{text}]")
      flagged |= over_roofline(r['greedy_sequential_fraction'])
    elif relabelled:
      text = f'– [{text}]'
    flagged |= over_roofline(e.get('greedy_sequential_roofline_fraction'))
    seq.append(f"{e.get('label') or v} {text}")
  if seq:
    setting.append('- **Sequential roofline** (greedy; the dense matmuls and attention run as separate '
                   'kernels, so their bounds add): µs/token (fraction reached)' + own + ' '
                   + ', '.join(seq) + '.')
  for alt in impls:
    line = []
    for v, e in ours.items():
      us = e.get(f'greedy_decoder_us_per_token_{alt}')
      if not us:
        continue
      fr, fs = e.get(f'greedy_roofline_fraction_{alt}'), e.get(f'greedy_sequential_roofline_fraction_{alt}')
      text = f'{fraction(fr)} / {fraction(fs)}'
      flagged |= over_roofline(fr) or over_roofline(fs)
      r = _relabel(relabelled, v, alt, 'greedy', us)
      if r:
        text = f"{fraction(r.get('greedy_fraction'))} / {fraction(r.get('greedy_sequential_fraction'))} [{text}]"
        flagged |= over_roofline(r.get('greedy_fraction')) or over_roofline(r.get('greedy_sequential_fraction'))
      elif relabelled:
        text = f'– / – [{text}]'
      line.append(f"{e.get('label') or v} {fmt_sig(us)} ({text})")
    setting.append(f'- **Greedy decoder with `--attention-impl {alt}`**: µs/token (fraction of the '
                   f'roofline / of the sequential roofline{own}) ' + ', '.join(line) + '.')
    beam = [f"{(e.get('label') or v)} {fmt_sig(e[f'beam_decoder_us_per_token_{alt}'])} "
            f"({fmt_sig(e.get(f'beam_vs_greedy_per_hypothesis_{alt}'))}×)"
            for v, e in ours.items() if e.get(f'beam_decoder_us_per_token_{alt}')]
    if beam:
      setting.append(f'- **Beam-4 decoder with `--attention-impl {alt}`**: µs/token (cost per '
                     f'hypothesis / greedy\'s, same path) ' + ', '.join(beam) + '.')
  if relabelled:
    setting.append(f'- **Fractions**: against the H100 datasheet, from {RELABELLED} '
                   f'(scripts/relabel_h100.py), where it holds the same timing; the fraction against this '
                   f'run\'s own measured ceilings in brackets (– where the file has no datasheet figure).')
  if flagged:
    setting.append(f'- {OVER_ROOFLINE_NOTE}')

  lines = md_table(header, md)
  if accel:
    lines += ['', f"The paper's Table 2, for reference ({PAPER_TABLE2_SETTING}): another device and "
              f"another implementation, so compare the multi-head / multi-query ratios above, not the µs"
              + ('; our setting also differs from the paper\'s' if _paper_setting_differs(s) else '') + '.', '']
    lines += md_table(['attention', 'training', 'greedy enc. + dec.', 'beam-4 enc. + dec.'],
                      [[cfg.ROWS['translate'][v].label, fmt_sig(p[0]), f'{fmt_sig(p[1])} + {fmt_sig(p[2])}',
                        f'{fmt_sig(p[3])} + {fmt_sig(p[4])}'] for v, p in PAPER_TABLE2.items()])
  return setting, lines, path


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
    cell_of = lambda r: (f"{fmt_sig(r['us'])} µs ({100 * r['copy_fraction']:.0f}%"  # noqa: E731
                         f"{' ' + OVER_ROOFLINE if over_roofline(r['copy_fraction']) else ''})" if r else '–')
    best = c.get('best')
    rows.append([name, cell_of(c.get('xla')), cell_of(c.get('default')), cell_of(best),
                 ', '.join(f'{k}={v}' for k, v in (best or {}).get('tuning', {}).items()) or 'defaults'])
  if not rows:
    return []
  flagged = any(over_roofline(r.get('copy_fraction')) for r in bench.get('kernels') or [] if 'us' in r)
  return (md_table(['case', 'XLA einsums', "Pallas (the run's defaults)", 'Pallas (best)', 'best tuning'], rows)
          + (['', OVER_ROOFLINE_NOTE] if flagged else []))


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
                + [f"{fmt_sig(p['us_per_token'])} ({fraction(p['sequential_roofline_fraction'])})" if p else '–'
                   for p in got.values()]
                + [fmt_sig(got[o]['us_per_token'] / got[q]['us_per_token']) if got[o] and got[q] else '–'
                   for o in ours for q in peers])
  hw = bench.get('hardware', {})
  lines = ['### LM decoding (`mqa-repro bench --parts lm_decode`): µs per token (fraction of the '
           'sequential roofline)', '',
           f"- Greedy from a 1-token prompt, N new tokens with EOS masked, random bf16 weights, on "
           f"{device_text(bench)}; roofline ceilings {fmt_sig(hw.get('ceiling_GBps'))} GB/s "
           f"({hw.get('ceiling_basis', {}).get('bandwidth', '?')}), {fmt_sig(hw.get('ceiling_TFLOPs'))} "
           f"TFLOP/s ({hw.get('ceiling_basis', {}).get('matmul', '?')}). ours / peer below 1: ours is "
           f"faster."]
  for peer, info in (block.get('peers') or {}).items():
    if info.get('note'):
      lines.append(f"- Peer {peer}: {info['note']}.")
  if not on_accelerator(bench):
    lines.append('- ' + CPU_NOTE)
  if any(over_roofline(p.get('sequential_roofline_fraction')) for p in points):
    lines.append(f'- {OVER_ROOFLINE_NOTE}')
  header = ['variant', 'N', 'batch'] + systems + [f'{o} / {q}' for o in ours for q in peers]
  return lines + [''] + md_table(header, rows) + ['']


TRAIN_FUSED = 'train_fused.json'   # scripts/h200_bench.sh train_fused: training on the fused kernel
LM_PROFILE = 'lm_profile.json'     # scripts/h200_bench.sh lm_profile: our LM step traced


def train_fused_lines(bench: dict, fused: dict | None) -> list[str]:
  """Table 2's training step on the fused attention kernel (--config.model.train_attention_impl=pallas)
  beside the einsums' (bench.json's rows); [] without a fused record."""
  rows = [r for r in (fused or {}).get('table2', []) if r.get('train_us_per_token')]
  if not rows:
    return []
  einsums = {r['variant']: r for r in bench.get('table2', []) if r.get('train_us_per_token')}
  cells = []
  for r in rows:
    mfu = r.get('train_mfu_vs_datasheet')
    text = (f"{r['variant']} {fmt_sig(r['train_us_per_token'])} µs/token"
            + (f" ({mfu:.0%} MFU)" if mfu else ''))
    e = einsums.get(r['variant'])
    if e:
      emfu = e.get('train_mfu_vs_datasheet')
      text += (f" against the einsums' {fmt_sig(e['train_us_per_token'])}"
               + (f" ({emfu:.0%})" if emfu else ''))
    cells.append(text)
  return [f"- **Training on the fused attention kernel** (`{TRAIN_FUSED}`, "
          f"`--config.model.train_attention_impl=pallas`, {device_text(fused)}): " + '; '.join(cells) + '.'
          + ('' if on_accelerator(fused) else ' ' + CPU_NOTE)]


def _categories(prof: dict | list) -> dict[str, float]:
  """µs per step per kind of kernel of a profile: its categories, or (an older greedy profile kept
  only its top kernels, a list) those kernels' sum per kind."""
  if isinstance(prof, dict) and prof.get('categories'):
    return {c: x['us_per_step'] for c, x in prof['categories'].items()}
  cats: dict[str, float] = {}
  for k in prof if isinstance(prof, list) else prof.get('kernels', []):
    cats[k['category']] = cats.get(k['category'], 0.0) + k['us_per_step']
  return dict(sorted(cats.items(), key=lambda kv: -kv[1]))


def table2_profile_table(bench: dict, top: int = 4) -> list[str]:
  """Where Table 2's greedy step, beam step and training step spend device time (`bench --profile`,
  traced once per variant): the timed step, the device time summed per kind of kernel, and the share
  of the timed step the device was busy. [] when the file holds no profile."""
  rows = []
  by_variant = {r['variant']: r for r in bench.get('table2', [])}
  for kind, key, step_key, per in (('greedy step', 'profiles', 'greedy_decoder_ms_per_step', 1e3),
                                   ('beam-4 step', 'beam_profiles', None, None)):
    for v, prof in (bench.get(key) or {}).items():
      row = by_variant.get(v, {})
      if step_key and row.get(step_key):
        step_us = row[step_key] * per
      elif kind.startswith('beam') and row.get('beam_decoder_us_per_token'):
        step_us = row['beam_decoder_us_per_token'] * row['beam_batch']
      else:
        step_us = None
      cats = _categories(prof)
      device = prof.get('device_us_per_step') if isinstance(prof, dict) else None
      partial = device is None   # an older greedy profile: only its top kernels were kept
      device = device if device is not None else sum(cats.values())
      rows.append([v, kind, fmt_sig(step_us) if step_us else '–',
                   fmt_sig(device) + (' (top kernels)' if partial else ''),
                   f'{device / step_us:.0%}' if step_us else '–',
                   '; '.join(f'{c} {fmt_sig(us)}' for c, us in list(cats.items())[:top])])
  for v, row in by_variant.items():
    prof = row.get('train_profile')
    if prof:
      step_us = row['train_step_s'] * 1e6
      rows.append([v, 'training step', fmt_sig(step_us), fmt_sig(prof['device_us_per_step']),
                   f"{prof['device_us_per_step'] / step_us:.0%}",
                   '; '.join(f'{c} {fmt_sig(us)}' for c, us in list(_categories(prof).items())[:top])
                   + (f" (matmuls at {prof['matmul_TFLOPs']:.0f} TFLOP/s)"
                      if prof.get('matmul_TFLOPs') else '')])
  if not rows:
    return []
  return (['### Where Table 2\'s steps go (`mqa-repro bench --profile`)', '',
           f'- {device_text(bench)}: one traced decode (or two training steps) per variant, device '
           'time per step summed per kind of kernel (`bench/profiles.py` names the kinds: XLA turns a '
           'matrix-vector product into a "reduce fusion"); "device busy" is that sum over the timed, '
           'untraced step.'] + ([] if on_accelerator(bench) else ['- ' + CPU_NOTE]) + [''] +
          md_table(['variant', 'what', 'µs per step (timed)', 'device µs per step', 'device busy',
                    f'top {top} kinds of kernel, µs per step'], rows) + [''])


def lm_profile_table(profile: dict | None, top: int = 3) -> list[str]:
  """Where our LM's greedy step spends device time (`bench --parts lm_decode --profile`); [] without."""
  points = [p for p in ((profile or {}).get('lm_decode') or {}).get('points', []) if p.get('profile')]
  if not points:
    return []
  rows = []
  for p in sorted(points, key=lambda p: (p['new_tokens'], p['variant'], p['batch'])):
    prof = p['profile']
    # the device time over the timed (untraced) step; files written before the busy share divided by
    # the untraced step stored one over the traced step, many times longer, so it is computed here
    busy = prof['device_us_per_step'] / (p['ms_per_step'] * 1e3) if p.get('ms_per_step') else None
    rows.append([p['variant'], str(p['new_tokens']), str(p['batch']), fmt_sig(p['ms_per_step'] * 1e3),
                 fmt_sig(prof['device_us_per_step']), f'{busy:.0%}' if busy is not None else '–',
                 '; '.join(f"{c} {fmt_sig(x['us_per_step'])}"
                           for c, x in list(prof['categories'].items())[:top])])
  return (['### Where an LM decoding step goes (`mqa-repro bench --parts lm_decode --profile`)', '',
           f"- Ours, {device_text(profile)}, from `{LM_PROFILE}`: a traced generation's device time per "
           'step summed per kind of kernel; "device busy" is that sum over the timed (untraced) step '
           '(the rest: launches and host work between kernels).'] +
          ([] if on_accelerator(profile) else ['- ' + CPU_NOTE]) + [''] +
          md_table(['variant', 'N', 'batch', 'µs per step (timed)', 'device µs per step', 'device busy',
                    f'top {top} kinds of kernel, µs per step'], rows) + [''])


# --------------------------------------------------------------------------------------------------
# Plots.


SWEEP_TITLES = {'length': 'target length', 'batch': 'batch size', 'kv_heads': 'kv heads g'}


def sweep_shapes(bench: dict, name: str) -> dict[str, str]:
  """What a sweep held fixed, as text ({'batch', 'live', 'source_len'}, the swept one left out): each
  point's own record, or for records from before points carried their shapes, the sweep's definition
  (bench.sweeps.SWEEPS at the run's size)."""
  points = (bench.get('sweeps') or {}).get(name) or []
  s = bench.get('setting', {})
  got = {k: sorted({p[k] for p in points if k in p}) for k in ('batch', 'live', 'source_len')}
  if not all(got.values()):
    try:
      from mqa_repro.bench.sweeps import SWEEPS   # imports jax: only for records without shapes
      sw = SWEEPS.get(s.get('size', ''), {})
    except ImportError:
      sw = {}
    half = s['target_len'] // 2 if s.get('target_len') else None
    legacy = {'length': {'batch': sw.get('length_batch')}, 'batch': {'live': half},
              'kv_heads': {'batch': s.get('batch'), 'live': half}}.get(name, {})
    for k in got:
      if not got[k]:
        v = legacy.get(k, s.get('source_len') if k == 'source_len' else None)
        got[k] = [v] if v is not None else []
  swept = {'length': 'live', 'batch': 'batch'}.get(name)
  return {k: ' / '.join(map(str, v)) or '?' for k, v in got.items() if k != swept}


def sweep_setting_text(bench: dict, name: str) -> str:
  shp = sweep_shapes(bench, name)
  parts = [f"batch {shp['batch']}" if 'batch' in shp else None,
           f"{shp['live']} cached target positions" if 'live' in shp else None,
           f"source length {shp['source_len']}"]
  return ', '.join(p for p in parts if p)


def sweep_impl(bench: dict) -> str:
  points = [p for ps in (bench.get('sweeps') or {}).values() for p in ps]
  impls = sorted({p['attention_impl'] for p in points if 'attention_impl' in p})
  return ' / '.join(impls) or bench.get('setting', {}).get('attention_impl', 'xla')


def sweep_table(bench: dict) -> list[str]:
  """The sweep points behind the plot: decoder µs/token beside the roofline, per sweep, each sweep
  with what it held fixed; a point faster than its roofline is flagged."""
  rows, flagged = [], False
  for name, points in (bench.get('sweeps') or {}).items():
    for p in sorted(points, key=lambda p: (p['variant'], p['x'])):
      flagged |= over_roofline(p.get('roofline_fraction'))
      rows.append([SWEEP_TITLES.get(name, name), sweep_setting_text(bench, name), p['variant'], str(p['x']),
                   fmt_sig(p['us_per_token']), fmt_sig(p.get('roofline_us_per_token')),
                   fraction(p.get('roofline_fraction'))])
  hw = bench.get('hardware', {})
  lines = [f"- {device_text(bench)}, bf16, `--attention-impl {sweep_impl(bench)}`; each point's roofline "
           + ("divides by the ceilings its own sitting measured (not the datasheet)"
              if self_measured_ceilings(hw) else "divides by the run's ceilings (see Table 2's hardware line)")
           + '.']
  if not on_accelerator(bench):
    lines.append('- ' + CPU_NOTE)
  if flagged:
    lines.append(f'- {OVER_ROOFLINE_NOTE}')
  return lines + [''] + md_table(['sweep', 'held fixed', 'variant', 'x', 'µs/token', 'roofline µs/token',
                                  'fraction'], rows)


def sweep_title(bench: dict) -> str:
  """The figure's title: hardware, size, dtype, implementation, the roofline's basis; CPU marked."""
  s, hw = bench.get('setting', {}), bench.get('hardware', {})
  title = (f"Decoder µs per token vs its roofline — {device_text(bench)}, size {s.get('size', '?')}, bf16, "
           f"attention impl {sweep_impl(bench)}; roofline ceilings "
           + ('self-measured' if self_measured_ceilings(hw) else 'datasheet / measured, the higher'))
  if not on_accelerator(bench):
    title += '\nCPU: pipeline check, not a speed result'
  return title


def plot_bench_sweeps(bench: dict, path: Path) -> Path | None:
  """bench_sweeps.png (sweep_figure); None, and no file, when the benchmark has no sweep points."""
  fig = sweep_figure(bench)
  if fig is None:
    return None
  return save_figure(fig, path, bbox_inches='tight')


def _legend_label(variants: list[str]) -> str:
  """'multi-query (g1)' for a row and its kv-heads point, 'g2 (grouped-query g=2)' for a point alone."""
  from mqa_repro.report.format import variant_label
  rows = [v for v in variants if not (v.startswith('g') and v[1:].isdigit())]
  points = [v for v in variants if v not in rows]
  if rows:
    return ' / '.join(variant_label(v) for v in rows) + (f" ({', '.join(points)})" if points else '')
  return ' / '.join(variant_label(v) for v in points)


def sweep_figure(bench: dict):
  """One panel per sweep; every variant in its colour (report.format.colour: the same in every panel
  and every plot; each line's label is its variant), measured solid, roofline dashed; one legend,
  outside the panels; a point faster than its own roofline ringed in black and named in the legend.
  None when there are no sweep points."""
  from matplotlib.lines import Line2D

  from mqa_repro.report.format import colour
  sweeps = {k: v for k, v in (bench.get('sweeps') or {}).items() if v}
  if not sweeps:
    return None
  plt = pyplot()
  fig, axes = plt.subplots(1, len(sweeps), figsize=(5 * len(sweeps), 4.4), squeeze=False)
  seen: dict[str, str] = {}     # variant -> colour, for the one legend
  flagged = False
  for ax, (name, points) in zip(axes[0], sweeps.items()):
    variants = list(dict.fromkeys(p['variant'] for p in points))
    if all(sum(p['variant'] == v for p in points) == 1 for v in variants):
      # one point per variant (the kv-heads sweep: g1, g2, g4, g8): a grey line through them, each
      # point in its variant's colour
      pts = sorted(points, key=lambda p: p['x'])
      ax.plot([p['x'] for p in pts], [p['us_per_token'] for p in pts], '-', color='#999999', zorder=1)
      roof = [(p['x'], p['roofline_us_per_token']) for p in pts if p.get('roofline_us_per_token')]
      if roof:
        ax.plot(*zip(*roof), '--', color='#999999', zorder=1)
      for p in pts:
        seen.setdefault(p['variant'], colour(p['variant']))
        ax.plot([p['x']], [p['us_per_token']], 'o', color=colour(p['variant']), zorder=3,
                label=p['variant'])
    else:
      for v in variants:
        pts = sorted((p for p in points if p['variant'] == v), key=lambda p: p['x'])
        c = seen.setdefault(v, colour(v))
        ax.plot([p['x'] for p in pts], [p['us_per_token'] for p in pts], 'o-', color=c, zorder=2,
                label=v)
        roof = [(p['x'], p['roofline_us_per_token']) for p in pts if p.get('roofline_us_per_token')]
        if roof:
          ax.plot(*zip(*roof), '--', color=c, alpha=0.8, zorder=2, label=f'{v} roofline')
    over = [p for p in points if over_roofline(p.get('roofline_fraction'))]
    if over:
      flagged = True
      ax.scatter([p['x'] for p in over], [p['us_per_token'] for p in over], s=160, facecolors='none',
                 edgecolors='black', linewidths=1.6, zorder=4)
    ax.set_xscale('log', base=2)
    ax.set_yscale('log')
    ax.set_xlabel(SWEEP_TITLES.get(name, name))
    ax.set_ylabel('decoder µs per token')
    ax.set_title(f'vs {SWEEP_TITLES.get(name, name)}\n{sweep_setting_text(bench, name)}', fontsize=9)
    ax.grid(alpha=0.3, which='both')
  # one legend entry per colour: a kv-heads point shares its row's entry (g1 is multi-query)
  entries: dict[str, list[str]] = {}
  for v, c in seen.items():
    entries.setdefault(c, []).append(v)
  handles = [Line2D([], [], color=c, marker='o', label=_legend_label(vs)) for c, vs in entries.items()]
  handles += [Line2D([], [], color='black', ls='-', label='measured'),
              Line2D([], [], color='black', ls='--', label='roofline')]
  if flagged:
    handles.append(Line2D([], [], ls='none', marker='o', ms=12, mfc='none', mec='black',
                          label='faster than its roofline:\nceiling or bytes wrong, not a result'))
  fig.legend(handles=handles, loc='center left', bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
  fig.suptitle(sweep_title(bench), fontsize=10)
  fig.tight_layout()
  return fig
