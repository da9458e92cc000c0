"""Uptraining report (scripts/uptrain_experiment.py's runs): a multi-head model converted to G key/value
heads and uptrained for alpha of its steps, beside the same variants trained from scratch, in the
manner of Ainslie et al. 2023 (Figure 5: quality against alpha; Figure 6: quality against decode time).

    python -m mqa_repro.report.uptrain --results results/h200/uptrain --baseline results/h200 \
        [--bench results/h200/bench.json] [--more results/h200/uptrain2 ...]

Reads ``<results>/rows/*.json`` (each carries ``variant``: kv_heads, init, alpha, kind) and the
multi-head source run: its own record there (kind 'multi-head source', written by the experiment),
else ``<baseline>/rows/<source>.json`` (the run named in the converted runs' records); writes
``uptrain.md``, ``uptrain.csv``, ``uptrain_alpha.png`` and, when the bench JSON has the kv-heads sweep,
``uptrain_latency.png``. BLEU differences from multi-head come with sacrebleu's paired bootstrap on
the stored hypotheses (cached in ``<results>/bootstrap.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from mqa_repro.report import quality
from mqa_repro.report.speed import device_text, on_accelerator
from mqa_repro.report.format import colour as variant_colour, save_figure
from mqa_repro.report.format import distinct as _distinct
from mqa_repro.report.format import fmt, md_table, params_text, pyplot, write_csv
from mqa_repro.report.records import read_json

Log = Callable[[str], None]
METRICS = (('newstest', 'dev', ('ln_ppl',), 'ln(PPL) newstest2013', 3),
           ('offline', 'dev', ('ln_ppl',), 'ln(PPL) offline dev', 3),
           ('newstest', 'test', ('bleu', 'greedy', 'intl', 'score'), 'BLEU newstest2014', 2),
           ('offline', 'test', ('bleu', 'greedy', 'intl', 'score'), 'BLEU offline test', 2))
INIT_STYLE = {'mean': 'o-', 'first': 's--', 'random': '^:', 'scratch': 'D'}


def _value(run: dict, group: str, role: str, path: tuple[str, ...]) -> float | None:
  return (quality.Row(run['task'], run['row'], [run]).values(group, role, *path) or [None])[0]


REFERENCE_ROWS = {'mqa': 1, 'gqa2': 2, 'gqa4': 4}   # the scaled reproduction's rows with G < h kv heads


def references(baseline: Path, base: dict | None) -> dict[int, list[dict]]:
  """G -> the baseline folder's from-scratch runs with G kv heads at the source's size and steps (every
  seed): the scaled reproduction's own rows, trained for N steps with d_ff widened to equal parameters.
  Not the N(1 + alpha)-step, same-d_ff baselines of the experiment; a reference beside them."""
  if base is None:
    return {}
  out: dict[int, list[dict]] = {}
  for f in sorted((baseline / 'rows').glob('*.json')):
    r = json.loads(f.read_text(encoding='utf-8'))
    if (r.get('task') == base.get('task') and r.get('row') in REFERENCE_ROWS and r.get('size') == base.get('size')
        and r['train']['steps'] == base['train']['steps']):
      out.setdefault(REFERENCE_ROWS[r['row']], []).append(r)
  return out


def load(results: Path, baseline: Path) -> tuple[list[dict], dict | None]:
  runs = [json.loads(f.read_text(encoding='utf-8')) for f in sorted((results / 'rows').glob('*.json'))]
  runs = [r for r in runs if r.get('variant')]
  own = [r for r in runs if r['variant']['kind'] == 'multi-head source']
  runs = [r for r in runs if r['variant']['kind'] != 'multi-head source']
  source = next((r['uptrain']['source_name'] for r in runs if r.get('uptrain')), None)
  # the source as the experiment itself evaluated it, else its record in the baseline folder
  base = next((r for r in own if r['name'] == source), None)
  base_file = baseline / 'rows' / f'{source}.json' if source else None
  if base is None and base_file and base_file.is_file():
    base = json.loads(base_file.read_text(encoding='utf-8'))
  if base is not None and base.get('fingerprint'):
    # runs converted from another training of the same source (a retrain on another machine) are
    # not compared with this one
    other = [r['name'] for r in runs if r.get('uptrain')
             and r['uptrain'].get('source_fingerprint') != base['fingerprint']]
    if other:
      raise ValueError(f"{', '.join(other)} were not converted from the {source} whose record is in "
                       f"{results / 'rows'} (parameters fingerprint {base['fingerprint']}): keep each "
                       f"training of the source in its own results folder")
  return sorted(runs, key=lambda r: (r['variant']['kv_heads'], r['variant']['kind'], r['variant']['init'],
                                     r['variant']['alpha'])), base


def bootstrap(results: Path, baseline: Path, base: dict, runs: list[dict], log: Log) -> dict[str, dict]:
  """{run name: {split: p-value of BLEU against multi-head}} on both test sets, greedy."""
  from mqa_repro.evaluation import bleu as evaluate
  from mqa_repro.report.records import read_lines_xz
  cache_file = results / 'bootstrap.json'
  cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
  out: dict[str, dict] = {}
  def first(relative: str) -> Path:   # the experiment's own file, else the baseline folder's
    return next((d / relative for d in (results, baseline) if (d / relative).is_file()), baseline / relative)

  for split in ('newstest2014', 'offline_test'):
    refs = first(f'refs/{split}.ref.txt.xz')
    base_hyps = first(f"hyps/{base['name']}/{split}.greedy.txt.xz")
    if not refs.is_file() or not base_hyps.is_file():
      continue
    todo = []
    for r in runs:
      hyps = results / 'hyps' / r['name'] / f'{split}.greedy.txt.xz'
      if hyps.is_file():
        key = f"{split}|{r['name']}|{quality._sha(hyps)}|{quality._sha(base_hyps)}"
        if key in cache:
          out.setdefault(r['name'], {})[split] = cache[key]
        else:
          todo.append((r, hyps, key))
    if todo:
      log(f'uptrain: paired bootstrap on {split}: {len(todo)} runs against multi-head')
      res = evaluate.paired_bootstrap(('mha', read_lines_xz(base_hyps)),
                                      [(r['name'], read_lines_xz(h)) for r, h, _ in todo],
                                      read_lines_xz(refs), samples=quality.BOOTSTRAP_SAMPLES)
      for r, _, key in todo:
        cache[key] = res[r['name']]['bleu']['p_value']
        out.setdefault(r['name'], {})[split] = cache[key]
  cache_file.write_text(json.dumps(cache, indent=1, sort_keys=True) + '\n')
  return out


GQA_ROWS = ('mha', 'gqa4', 'gqa2', 'mqa')   # Table 1's global-attention rows with 8, 4, 2, 1 kv heads


def latency_by_g(bench: dict | None) -> tuple[dict[int, float], str]:
  """Greedy decoder µs/token for each kv-head count g, and where it comes from: Table 2's whole
  greedy decode at the paper's setting when the benchmark timed two or more of GQA_ROWS (`bench
  --variants mha,gqa4,gqa2,mqa`) and no fewer than the kv-heads sweep has points, else that sweep
  (one decoder step at a fixed cache)."""
  bench = bench or {}
  rows = {int(r['g']): r['greedy_decoder_us_per_token'] for r in bench.get('table2', [])
          if r.get('variant') in GQA_ROWS and r.get('greedy_decoder_us_per_token')}
  device = bench.get('hardware', {}).get('device', '?')
  points = (bench.get('sweeps') or {}).get('kv_heads') or []
  if len(rows) >= max(2, len({p['x'] for p in points if p.get('us_per_token')})):
    s = bench.get('setting', {})
    return rows, (f"Table 2's greedy decoder at the paper's setting (Table 1's rows, at equal parameters): "
                  f"the WMT model, random bf16 weights, "
                  f"batch {s.get('batch', '?')}, source and target {s.get('source_len', '?')}, "
                  f"`--attention-impl {s.get('attention_impl', '?')}`; {device}")
  latency = {int(p['x']): p['us_per_token'] for p in points if p.get('us_per_token')}
  if not latency:
    return {}, ''
  pt = points[0]
  return latency, (f"the bench's kv-heads sweep: the paper's WMT dims, random bf16 weights, batch "
                   f"{pt.get('batch', '?')}, one step at {pt.get('live', '?')} cached target positions, "
                   f"`--attention-impl {pt.get('attention_impl', '?')}`; {device}")


def source_label(folder: Path, base: dict | None) -> str:
  """How the table and plots name one training of the source: its experiment folder, and the first
  digits of its parameters' fingerprint when recorded."""
  fp = (base or {}).get('fingerprint')
  return folder.name + (f' ({fp[:8]})' if fp else '')


def write(results: Path, baseline: Path, bench_file: Path | None, log: Log = print,
          more: Sequence[Path] = ()) -> list[Path]:
  """The report into `results`, from the experiment there and (`more`) from experiment folders of
  other trainings of the source (a source retrained on a fresh machine goes into a folder of its own).
  Each converted run is compared with its own folder's source: Δ BLEU and the bootstrap p; the
  table names the source of every row when there is more than one."""
  experiments = []
  for folder in [results, *more]:
    runs, base = load(folder, baseline)
    if not runs:
      raise ValueError(f'no uptraining runs under {folder / "rows"}')
    experiments.append((folder, runs, base,
                        bootstrap(folder, baseline, base, runs, log) if base else {}))
  several = len(experiments) > 1
  runs = [r for _, rs, _, _ in experiments for r in rs]
  base = experiments[0][2]          # the source the references and plots are drawn against
  labels = {id(r): source_label(folder, b) for folder, rs, b, _ in experiments for r in rs + [b] if r}
  bench = read_json(bench_file)
  latency, latency_source = latency_by_g(bench)
  header = (['source'] if several else []) + ['kv heads G', 'kind', 'init', 'α', 'steps', 'params'] + [
      m[3] for m in METRICS] + ['Δ BLEU newstest2014 vs its multi-head source (p)']
  table, csv_rows = [], []
  for folder, folder_runs, folder_base, p_values in experiments:
    for r in ([folder_base] if folder_base else []) + folder_runs:
      v = r.get('variant') or {'kv_heads': r['model']['g'], 'kind': 'multi-head source', 'init': '–',
                               'alpha': 0}
      vals = [_value(r, g, role, path) for g, role, path, _, _ in METRICS]
      delta = '–'
      if folder_base is not None and r is not folder_base and vals[2] is not None:
        d = vals[2] - _value(folder_base, *METRICS[2][:3])
        delta = f"{d:+.2f} (p {quality.fmt_p(p_values.get(r['name'], {}).get('newstest2014'))})"
      steps = r['train']['steps']
      table.append(([labels[id(r)]] if several else []) +
                   [str(v['kv_heads']), v['kind'], v['init'], f"{v['alpha']:g}", str(steps),
                    params_text(r['params'])] +
                   [fmt(x, m[4]) for x, m in zip(vals, METRICS)] + [delta])
      csv_rows.append([r['name'], labels[id(r)], v['kv_heads'], v['kind'], v['init'], v['alpha'], steps,
                       r['params'], *vals, p_values.get(r['name'], {}).get('newstest2014'),
                       p_values.get(r['name'], {}).get('offline_test'), latency.get(v['kv_heads'])])
  refs = {g: (seeds, [quality.Stat.of([x for x in (_value(r, gr, role, path) for r in seeds)
                                        if x is not None]) for gr, role, path, _, _ in METRICS])
          for g, seeds in references(baseline, base).items()}
  for g, (seeds, stats) in sorted(refs.items()):
    delta = '–'
    if base is not None and stats[2].mean is not None:
      d = stats[2].mean - _value(base, *METRICS[2][:3])
      delta = f'{d:+.2f}' + (f' (mean of {len(seeds)} seeds)' if len(seeds) > 1 else '')
    table.append((['–'] if several else []) +
                 [str(g), f'from scratch, reproduction ({_seeds(len(seeds))})', '–',
                  '–', str(seeds[0]['train']['steps']), params_text(seeds[0]['params'])] +
                 [st.text(m[4]) for st, m in zip(stats, METRICS)] + [delta])
    csv_rows.append([seeds[0]['row'], '', g, 'from scratch (reproduction)', '', '', seeds[0]['train']['steps'],
                     seeds[0]['params'], *[st.mean for st in stats], None, None, latency.get(g)])
  written = [write_csv(results / 'uptrain.csv', [
      'run', 'source', 'kv_heads', 'kind', 'init', 'alpha', 'steps', 'params', 'ln_ppl_newstest2013',
      'ln_ppl_offline_dev',
      'bleu_newstest2014', 'bleu_offline_test', 'p_bleu_newstest2014_vs_mha', 'p_bleu_offline_test_vs_mha',
      'greedy_decoder_us_per_token'], csv_rows)]
  plot_labels = {id(r): labels[id(r)] for r in runs} if several else {}
  plots = [p for p in (_plot_alpha(results / 'uptrain_alpha.png', runs, base, refs, plot_labels,
                                   [(b, labels[id(b)]) for _, _, b, _ in experiments[1:] if b]),
                       _plot_latency(results / 'uptrain_latency.png', runs, base, latency, bench, refs,
                                     plot_labels))
           if p]
  written += plots
  device = base.get('provenance', {}).get('device_kind', '?') if base else '?'
  md = ['# Uptraining: multi-head -> grouped-query / multi-query (Ainslie et al. 2023)', '',
        f"Source: `{base['name'] if base else '?'}` ({device})"
        + (f", {len(experiments)} trainings of it ({', '.join(labels[id(b)] for _, _, b, _ in experiments if b)}; "
           "each converted run is compared with its own)" if several else '')
        + "; converted by `mqa-repro convert` (mean / "
        "first / random K/V initialisation, d_ff kept), uptrained for α of its steps with a warm restart; "
        "from-scratch baselines keep the same d_ff and train for N(1 + α) steps. Decoding greedy; "
        "p = sacrebleu's paired bootstrap against the multi-head source (1000 resamples, one seed each). "
        "'from scratch, reproduction': the scaled reproduction's own rows with G kv heads (N steps, d_ff "
        "widened to equal parameters; mean ± std over seeds), a reference beside the experiment's "
        "baselines.", '',
        *md_table(header, table), '']
  if latency:
    md += [f"Greedy decoder µs/token for each G ({latency_source}, `{bench_file}`): "
           + ', '.join(f'G={g}: {t:.2f}' for g, t in sorted(latency.items())), '']
  captions = {'uptrain_alpha.png': 'quality against α', 'uptrain_latency.png': 'quality against decoder time'}
  md += [f'![{captions[p.name]}]({p.name})' for p in plots]
  (results / 'uptrain.md').write_text('\n'.join(md) + '\n', encoding='utf-8')
  return [results / 'uptrain.md'] + written


def _seeds(n: int) -> str:
  return f'{n} seed' + ('s' if n > 1 else '')


def _plot_alpha(path: Path, runs: list[dict], base: dict | None,
                refs: dict[int, tuple[list[dict], list[quality.Stat]]] | None = None,
                labels: dict[int, str] | None = None,
                other_bases: Sequence[tuple[dict, str]] = ()) -> Path | None:
  """refs: G -> (the reproduction's from-scratch runs, their Stat per METRICS entry); labels: id(run)
  -> its source's label when the runs come from several trainings of the source (one line each);
  other_bases: (record, label) of those other sources (a horizontal line each)."""
  labels = labels or {}
  sources = list(dict.fromkeys(labels.get(id(r), '') for r in runs))
  plt = pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(13.5, 4.2))
  for ax, k in zip(axes, (0, 2)):
    group, role, metric, title, _ = METRICS[k]
    for g in sorted({r['variant']['kv_heads'] for r in runs}):
      colour = variant_colour(f'g{g}')   # the same colour as the row with g kv heads everywhere
      for init in ('mean', 'first', 'random'):
        for src in sources:
          pts = sorted((r['variant']['alpha'], _value(r, group, role, metric)) for r in runs
                       if r['variant']['kv_heads'] == g and r['variant']['init'] == init
                       and labels.get(id(r), '') == src)
          pts = [(a, v) for a, v in pts if v is not None]
          if pts:
            ax.plot(*zip(*pts), INIT_STYLE[init], color=colour, alpha=1.0 if src == sources[0] else 0.55,
                    label=f'G={g} {init}' + (f' [{src}]' if src else ''))
      scratch = [(r['variant']['alpha'], _value(r, group, role, metric)) for r in runs
                 if r['variant']['kv_heads'] == g and r['variant']['kind'] == 'from scratch']
      if scratch:
        ax.plot(*zip(*scratch), INIT_STYLE['scratch'], color=colour, mfc='none', ms=8,
                label=f'G={g} from scratch, N(1+α) steps')
    for g, (seeds, stats) in sorted((refs or {}).items()):
      if stats[k].mean is not None:
        ax.axhline(stats[k].mean, color=variant_colour(f'g{g}'), lw=1, ls=':',
                   label=f'G={g} from scratch, N steps (reproduction, {_seeds(len(seeds))})')
    first = [(base, sources[0] if other_bases else '')] if base is not None else []
    for (b, src), ls in zip(first + list(other_bases), ('--', '-.', (0, (1, 3)), (0, (5, 5)))):
      if _value(b, group, role, metric) is not None:
        ax.axhline(_value(b, group, role, metric), color='black', lw=1, ls=ls,
                   label='multi-head source' + (f' [{src}]' if src else ''))
    ax.set_xlabel('uptraining fraction α')
    ax.set_xlim(0, 1.25 * max([r['variant']['alpha'] for r in runs] + [0.01]))   # α = 0: converted, not uptrained
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.02, 1.0))   # beside the points, never on them
  every = [quality.Row(r.get('task', 'translate'), r.get('row', '?'), [r]) for r in ([base] if base else []) + runs]
  source = f", multi-head source {base['train']['steps']} steps" if base else ''
  fig.suptitle('Quality against uptraining fraction (converted multi-head, greedy decoding) — '
               f"{quality.hardware_text(every)}, size {_distinct(r.get('size', '?') for r in runs)}{source}",
               fontsize=10)
  return save_figure(fig, path)


def _plot_latency(path: Path, runs: list[dict], base: dict | None, latency: dict[int, float],
                  bench: dict | None,
                  refs: dict[int, tuple[list[dict], list[quality.Stat]]] | None = None,
                  labels: dict[int, str] | None = None) -> Path | None:
  """BLEU against the decoder's µs/token at each G: uptrained (mean init) and from-scratch runs, the
  source, and (refs) the reproduction's from-scratch rows with their seed spread."""
  if not latency:
    return None
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6, 4.2))
  metric = METRICS[2]
  for r in runs:
    g, a = r['variant']['kv_heads'], r['variant']['alpha']
    if g not in latency or r['variant']['init'] not in ('mean', 'scratch'):
      continue
    v = _value(r, metric[0], metric[1], metric[2])
    marker = INIT_STYLE[r['variant']['init']][0]
    ax.scatter(latency[g], v, marker=marker, s=40 if r['variant']['init'] == 'mean' else 60,
               facecolors='none' if r['variant']['kind'] == 'from scratch' else None,
               color=variant_colour(f'g{g}'))
    src = (labels or {}).get(id(r))
    ax.annotate(f"G={g} {'up' if r['variant']['kind'] == 'uptrained' else 'scratch'} α={a:g}"
                + (f' [{src}]' if src and r['variant']['kind'] == 'uptrained' else ''),
                (latency[g], v), fontsize=6, xytext=(3, 3), textcoords='offset points')
  for g, (seeds, stats) in sorted((refs or {}).items()):
    st = stats[2]
    if g not in latency or st.mean is None:
      continue
    ax.errorbar(latency[g], st.mean, yerr=st.std or 0.0, fmt='D', mfc='none', capsize=3,
                color=variant_colour(f'g{g}'))
    ax.annotate(f'G={g} reproduction ({_seeds(len(seeds))})', (latency[g], st.mean), fontsize=6,
                xytext=(3, -9), textcoords='offset points')
  if base is not None and 8 in latency:
    ax.scatter(latency[8], _value(base, metric[0], metric[1], metric[2]), color='black', marker='*', s=90)
    ax.annotate('multi-head source', (latency[8], _value(base, metric[0], metric[1], metric[2])),
                fontsize=7, xytext=(-70, -12), textcoords='offset points')
  ax.set_xlabel(f"greedy decoder µs/token (paper dims, batch 1024, {(bench or {}).get('hardware', {}).get('device', '?')})")
  ax.set_ylabel(metric[3])
  device = device_text(bench)
  ax.set_title(f'Quality against decoding time over G ({device}, bf16)'
               + ('' if on_accelerator(bench) else '\nCPU timings: pipeline check, not a speed result'), fontsize=10)
  ax.grid(alpha=0.3)
  return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog='python -m mqa_repro.report.uptrain', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--results', required=True)
  p.add_argument('--baseline', required=True, help="the multi-head source's results directory")
  p.add_argument('--bench', default=None, help='a bench JSON with the kv-heads sweep')
  p.add_argument('--more', nargs='*', default=[], metavar='DIR',
                 help='experiment folders of other trainings of the source (each with its own source '
                      'record), reported beside --results, each run against its own source')
  args = p.parse_args(argv)
  try:
    for path in write(Path(args.results), Path(args.baseline), Path(args.bench) if args.bench else None,
                      more=[Path(m) for m in args.more]):
      print(path)
  except ValueError as e:
    print(f'uptrain report: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
