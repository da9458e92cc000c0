"""Tables 1 and 3 from the runs' results JSON: every row's mean ± std over its seeds beside the paper's
number, the paired bootstrap of each row against multi-head, and the plots.

A row's cell is ``mean ± std (paper)`` over its seeds (sample std, n - 1), or ``value (paper)`` for one
seed; the seed count is its own column. BLEU is sacrebleu's on detokenised text, ``tok:intl`` as in the
paper (13a and chrF in the CSV). The bootstrap (sacrebleu's paired bootstrap resampling, 1000 samples)
compares each row's seed-0 hypotheses with multi-head's seed-0 hypotheses on the same test sentences;
p is the chance that a BLEU difference that large arises from which sentences were drawn. It measures
test-set noise only: the seed spread beside it is the training noise.

Shape of a results directory (written by ``reproduce``): ``rows/<run>.json``, ``hyps/<run>/<split>.
<decoding>.txt.xz`` and ``refs/<split>.ref.txt.xz``. Bootstrap results are cached in
``bootstrap.json``, keyed by the hypothesis files' hashes.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

from mqa_repro import config as cfg
from mqa_repro import experiment as xp
from mqa_repro import tasks
from mqa_repro.report import records
from mqa_repro.report.format import colour   # one colour per variant, every plot
from mqa_repro.report.format import distinct as _distinct
from mqa_repro.report.format import md_table, params_text, pyplot, save_figure
from mqa_repro.report.format import write_csv as _write_csv

Log = Callable[[str], None]
BOOTSTRAP_SAMPLES = 1000


# --------------------------------------------------------------------------------------------------
# Runs grouped by row.


@dataclasses.dataclass
class Row:
  task: str
  row: str
  runs: list[dict]           # one results JSON per seed, by seed

  @property
  def label(self) -> str:
    return self.runs[0]['label']

  @property
  def model(self) -> dict:
    return self.runs[0]['model']

  def seed_run(self, seed: int = 0) -> dict | None:
    return next((r for r in self.runs if r.get('seed', 0) == seed), None)

  def values(self, group: str, role: str, *path: str) -> list[float]:
    out = []
    for r in self.runs:
      v: Any = (r.get('evals', {}).get(group) or {}).get(role)
      for key in path:
        v = v.get(key) if isinstance(v, dict) else None
      if isinstance(v, (int, float)) and math.isfinite(v):
        out.append(float(v))
    return out


def load_rows(results: Path) -> dict[str, list[Row]]:
  """rows/*.json -> {task: [Row]} in table order (the paper's rows first, then ours)."""
  runs: dict[tuple[str, str], list[dict]] = {}
  for r in records.load_runs(results):
    runs.setdefault((r['task'], r['row']), []).append(r)
  out: dict[str, list[Row]] = {task: [] for task in tasks.TASKS}
  for task in out:
    names = [row for t, row in runs if t == task]
    for name in xp.rows_in_table(task, names):
      if (task, name) in runs:
        out[task].append(Row(task, name, sorted(runs[task, name], key=lambda r: r.get('seed', 0))))
  return out


def eval_groups(rows: Sequence[Row]) -> list[tuple[str, str]]:
  """(key, description) of every eval group the rows were scored on, first-seen order."""
  seen: dict[str, str] = {}
  for row in rows:
    for r in row.runs:
      for key, g in r.get('evals', {}).items():
        seen.setdefault(key, g.get('description', key))
  return list(seen.items())


def split_name(rows: Sequence[Row], group: str, role: str) -> str | None:
  for row in rows:
    for r in row.runs:
      name = ((r.get('evals', {}).get(group) or {}).get(role) or {}).get('name')
      if name:
        return name
  return None


# --------------------------------------------------------------------------------------------------
# Numbers and their formatting.


@dataclasses.dataclass(frozen=True)
class Stat:
  mean: float | None
  std: float | None
  n: int

  @classmethod
  def of(cls, values: Sequence[float]) -> 'Stat':
    if not values:
      return cls(None, None, 0)
    return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None,
               len(values))

  def text(self, digits: int = 2) -> str:
    if self.mean is None:
      return '–'
    if self.std is None:
      return f'{self.mean:.{digits}f}'
    return f'{self.mean:.{digits}f} ± {self.std:.{digits}f}'

  def difference(self, base: 'Stat') -> tuple[float | None, float | None]:
    """(mean - base.mean, its standard error from the two seed spreads) (None where unknown)."""
    if self.mean is None or base.mean is None:
      return None, None
    if self.std is None or base.std is None:
      return self.mean - base.mean, None
    return self.mean - base.mean, math.sqrt(self.std ** 2 / self.n + base.std ** 2 / base.n)


def fmt_p(p: float | None) -> str:
  if p is None:
    return '–'
  return '< 0.001' if p < 0.001 else f'{p:.3f}'


def ppl_text(s: Stat) -> str:
  """Perplexities: one decimal, e-notation once huge (an untrained model)."""
  if s.mean is None:
    return '–'
  if s.mean >= 1e5:
    return f'{s.mean:.3g}'
  return s.text(1)


def paper_text(x: float | None, digits: int) -> str:
  return '' if x is None else f' ({x:.{digits}f})'


# --------------------------------------------------------------------------------------------------
# Paired bootstrap, cached.


def _sha(path: Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def bootstrap(results: Path, rows: Sequence[Row], split: str, decoding: str, log: Log) -> dict[str, dict]:
  """{row: {'bleu': {score, p_value, ci}, 'chrf': {...}}} of each row's seed-0 hypotheses against
  multi-head's on `split`; {} when the hypotheses or references are not in `results`."""
  def hyp_file(row: Row) -> Path | None:
    run = row.seed_run(0)
    if run is None:
      return None
    path = results / 'hyps' / run['name'] / f"{records.split_file_name(split)}.{decoding}.txt.xz"
    return path if path.is_file() else None

  base = next((r for r in rows if r.row == xp.baseline_row(r.task)), None)
  refs = results / 'refs' / f"{records.split_file_name(split)}.ref.txt.xz"
  if base is None or hyp_file(base) is None or not refs.is_file():
    return {}
  others = [(r, hyp_file(r)) for r in rows if r is not base and hyp_file(r) is not None]
  cache_file = results / 'bootstrap.json'
  cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
  key = lambda f: f'{split}|{decoding}|{_sha(hyp_file(base))}|{_sha(f)}|{_sha(refs)}|{BOOTSTRAP_SAMPLES}'  # noqa: E731
  todo = [(r, f) for r, f in others if key(f) not in cache]
  if todo:
    from mqa_repro.evaluation.bleu import paired_bootstrap
    log(f'tables: paired bootstrap on {split} ({decoding}): {len(todo)} rows against multi-head')
    out = paired_bootstrap((base.row, records.read_lines_xz(hyp_file(base))),
                                    [(r.row, records.read_lines_xz(f)) for r, f in todo], records.read_lines_xz(refs),
                                    samples=BOOTSTRAP_SAMPLES)
    for r, f in todo:
      cache[key(f)] = {**out[r.row], 'signatures': out['signatures']}
    cache_file.write_text(json.dumps(cache, indent=1, sort_keys=True) + '\n')
  return {r.row: cache[key(f)] for r, f in others}


# --------------------------------------------------------------------------------------------------
# Tables.


def _dims(row: Row, paper: tuple | None) -> list[str]:
  m = row.model
  ph, pk, pff = (paper or (None,) * 3)[:3]
  paren = lambda x: '' if x is None else f' ({x})'  # noqa: E731
  return [f"{m['h']}{paren(ph)}", f"{m['d_k']}{paren(pk)}", f"{m['d_ff']}{paren(pff)}",
          params_text(row.runs[0]['params']), str(len(row.runs))]


def table1(results: Path, rows: Sequence[Row], group: str, log: Log) -> tuple[list[str], list[Path]]:
  """Table 1 for one eval group: markdown lines and the CSV files written."""
  dev, test = split_name(rows, group, 'dev'), split_name(rows, group, 'test')
  boot = {d: bootstrap(results, rows, test, d, log) if test else {} for d in ('greedy', 'beam4')}
  base = next((r for r in rows if r.row == 'mha'), None)
  header = ['attention', 'h', 'd_k = d_v', 'd_ff', 'params', 'seeds', f'ln(PPL) {dev}',
            f'BLEU {dev} greedy', f'BLEU {test} greedy', f'BLEU {test} beam 4', f'chrF {test} greedy',
            f'Δ BLEU {test} greedy vs multi-head (p)']
  md, csv_rows = [], []
  for row in rows:
    paper = xp.PAPER_TABLE1.get(row.row)
    p = paper or (None,) * 7
    ppl = Stat.of(row.values(group, 'dev', 'ln_ppl'))
    bdev = Stat.of(row.values(group, 'dev', 'bleu', 'greedy', 'intl', 'score'))
    bg = Stat.of(row.values(group, 'test', 'bleu', 'greedy', 'intl', 'score'))
    bb = Stat.of(row.values(group, 'test', 'bleu', 'beam4', 'intl', 'score'))
    cg = Stat.of(row.values(group, 'test', 'chrf', 'greedy', 'score'))
    delta = '–'
    if base is not None and row is not base:
      d, _ = bg.difference(Stat.of(base.values(group, 'test', 'bleu', 'greedy', 'intl', 'score')))
      pv = (boot['greedy'].get(row.row) or {}).get('bleu', {}).get('p_value')
      delta = f'{d:+.2f} (p {fmt_p(pv)})' if d is not None else '–'
    md.append([row.label] + _dims(row, paper) +
              [ppl.text(3) + paper_text(p[3], 3), bdev.text() + paper_text(p[4], 1),
               bg.text() + paper_text(p[5], 1), bb.text() + paper_text(p[6], 1), cg.text(1), delta])
    g13 = Stat.of(row.values(group, 'test', 'bleu', 'greedy', '13a', 'score'))
    cb = Stat.of(row.values(group, 'test', 'chrf', 'beam4', 'score'))
    pvals = [(boot[d].get(row.row) or {}).get(m, {}).get('p_value') for d in ('greedy', 'beam4')
             for m in ('bleu', 'chrf')]
    csv_rows.append([row.row, row.label, row.model['h'], row.model['d_k'], row.model['d_ff'],
                     row.runs[0]['params'], len(row.runs), ppl.mean, ppl.std, p[3], bdev.mean, bdev.std,
                     p[4], bg.mean, bg.std, g13.mean, p[5], bb.mean, bb.std, p[6], cg.mean, cg.std,
                     cb.mean, cb.std, *pvals])
  path = _write_csv(results / f'table1_{group}.csv', [
      'row', 'attention', 'h', 'd_k', 'd_ff', 'params', 'seeds', 'ln_ppl_dev_mean', 'ln_ppl_dev_std',
      'ln_ppl_dev_paper', 'bleu_dev_mean', 'bleu_dev_std', 'bleu_dev_paper', 'bleu_test_greedy_mean',
      'bleu_test_greedy_std', 'bleu_test_greedy_13a_mean', 'bleu_test_greedy_paper',
      'bleu_test_beam4_mean', 'bleu_test_beam4_std', 'bleu_test_beam4_paper', 'chrf_test_greedy_mean',
      'chrf_test_greedy_std', 'chrf_test_beam4_mean', 'chrf_test_beam4_std', 'p_bleu_greedy_vs_mha',
      'p_chrf_greedy_vs_mha', 'p_bleu_beam4_vs_mha', 'p_chrf_beam4_vs_mha'], csv_rows)
  runs_path = _runs_csv(results / f'runs_table1_{group}.csv', rows, group, [
      ('ln_ppl_dev', 'dev', ('ln_ppl',)),
      ('bleu_dev_greedy', 'dev', ('bleu', 'greedy', 'intl', 'score')),
      ('bleu_test_greedy', 'test', ('bleu', 'greedy', 'intl', 'score')),
      ('bleu_test_greedy_13a', 'test', ('bleu', 'greedy', '13a', 'score')),
      ('bleu_test_beam4', 'test', ('bleu', 'beam4', 'intl', 'score')),
      ('chrf_test_greedy', 'test', ('chrf', 'greedy', 'score')),
      ('chrf_test_beam4', 'test', ('chrf', 'beam4', 'score'))])
  lines = md_table(header, md)
  sigs = sorted({sig for b in boot.values() for v in b.values() for sig in v.get('signatures', {}).values()})
  if sigs:
    lines += ['', 'Bootstrap signatures: ' + '; '.join(f'`{s}`' for s in sigs)]
  return lines, [path, runs_path]


def table3(results: Path, rows: Sequence[Row], group: str, log: Log) -> tuple[list[str], list[Path]]:
  dev = split_name(rows, group, 'dev')
  base = next((r for r in rows if r.row == 'mha'), None)
  header = ['attention', 'h', 'd_k = d_v', 'd_ff', 'params', 'seeds', f'PPL per word, {dev}',
            'ln(PPL) per subword', 'Δ ln(PPL) vs multi-head (± s.e.)']
  md, csv_rows = [], []
  for row in rows:
    paper = xp.PAPER_TABLE3.get(row.row)
    p = paper or (None,) * 4
    wp = Stat.of(row.values(group, 'dev', 'word_ppl'))
    lp = Stat.of(row.values(group, 'dev', 'ln_ppl'))
    delta = '–'
    if base is not None and row is not base:
      d, se = lp.difference(Stat.of(base.values(group, 'dev', 'ln_ppl')))
      delta = '–' if d is None else f'{d:+.3f}' + (f' ± {se:.3f}' if se is not None else '')
    md.append([row.label] + _dims(row, paper) + [ppl_text(wp) + paper_text(p[3], 1), lp.text(3), delta])
    csv_rows.append([row.row, row.label, row.model['h'], row.model['d_k'], row.model['d_ff'],
                     row.runs[0]['params'], len(row.runs), wp.mean, wp.std, p[3], lp.mean, lp.std])
  path = _write_csv(results / f'table3_{group}.csv', [
      'row', 'attention', 'h', 'd_k', 'd_ff', 'params', 'seeds', 'word_ppl_mean', 'word_ppl_std',
      'word_ppl_paper', 'ln_ppl_mean', 'ln_ppl_std'], csv_rows)
  runs_path = _runs_csv(results / f'runs_table3_{group}.csv', rows, group, [
      ('word_ppl_dev', 'dev', ('word_ppl',)), ('ln_ppl_dev', 'dev', ('ln_ppl',))])
  return md_table(header, md), [path, runs_path]


def _runs_csv(path: Path, rows: Sequence[Row], group: str,
              columns: Sequence[tuple[str, str, tuple[str, ...]]]) -> Path:
  """Every seed's numbers, one line per run."""
  out = []
  for row in rows:
    for r in row.runs:
      one = Row(row.task, row.row, [r])
      out.append([r['name'], row.row, r.get('seed', 0)] +
                 [(one.values(group, role, *path) or [None])[0] for _, role, path in columns])
  return _write_csv(path, ['run', 'row', 'seed'] + [c[0] for c in columns], out)


def compare(row: Stat, base: Stat, lower_is_better: bool) -> tuple[float | None, float | None, str]:
  """(row mean - base mean, its standard error, verdict). With seeds on both sides the s.e. comes from
  the two spreads. A one-seed row against a base with seeds is judged by the base's spread, as one
  more draw: s.e. = s_base * sqrt(1 + 1 / n_base). That assumes the variant varies across seeds as the
  base does, which a variant need not; the verdict says so."""
  d, se = row.difference(base)
  if d is None:
    return None, None, ''
  borrowed = se is None and row.n == 1 and base.std is not None
  if borrowed:
    se = base.std * math.sqrt(1 + 1 / base.n)
  if se is None:
    return d, None, 'one seed'
  direction = 'worse' if (d > 0) == lower_is_better else 'better'
  if borrowed:
    return d, se, ("one seed: within multi-head's seed noise" if abs(d) <= 2 * se else
                   f"one seed: {direction} beyond 2 s.e. of multi-head's seed spread")
  return d, se, 'within seed noise' if abs(d) <= 2 * se else f'{direction} beyond 2 s.e.'


def display_names(rows: Sequence[Row]) -> dict[str, str]:
  """Row -> its label, with heads and head size where two rows share a label (Table 3's multi-head rows)."""
  counts = collections.Counter(r.label for r in rows)
  return {r.row: r.label if counts[r.label] == 1 else f"{r.label} h={r.model['h']}, d_k={r.model['d_k']}"
          for r in rows}


def differences(rows: Sequence[Row], group: str, metric: tuple[str, ...], role: str,
                lower_is_better: bool) -> list[dict[str, Any]]:
  """Each row against multi-head on one metric: difference of seed means, its standard error and
  whether it exceeds twice that (compare)."""
  base = next((r for r in rows if r.row == 'mha'), None)
  if base is None:
    return []
  b = Stat.of(base.values(group, role, *metric))
  names = display_names(rows)
  out = []
  for row in rows:
    if row is base:
      continue
    d, se, verdict = compare(Stat.of(row.values(group, role, *metric)), b, lower_is_better)
    if d is None:
      continue
    out.append({'row': row.row, 'label': names[row.row], 'difference': d, 'se': se, 'verdict': verdict})
  return out


# --------------------------------------------------------------------------------------------------
# Plots.


def hardware_text(rows: Sequence[Row]) -> str:
  """'2 × NVIDIA H200, preset gpu' of the runs behind a plot (every distinct value, ' / '-joined)."""
  prov = [r.get('provenance', {}) for row in rows for r in row.runs]
  devices = _distinct(f"{p.get('device_count', '?')} × {p.get('device_kind', '?')}" for p in prov)
  presets = [p['preset'] for p in prov if p.get('preset')]
  return f"{devices}, preset {_distinct(presets)}" if presets else devices


def scale_text(rows: Sequence[Row]) -> str:
  """'size gpu (d_model 512), 3500 steps' of the runs behind a plot."""
  runs = [r for row in rows for r in row.runs]
  return (f"size {_distinct(r['size'] for r in runs)} (d_model {_distinct(r['model']['d_model'] for r in runs)}), "
          f"{_distinct(r['train']['steps'] for r in runs)} steps")


def _short(row: Row) -> str:
  m = row.model
  return f"{row.row}\nh{m['h']} g{m['g']} d{m['d_k']}" + (' local' if m.get('window') else '')


def plot_rows(path: Path, title: str, rows: Sequence[Row],
              panels: Sequence[tuple[str, str, str, tuple[str, ...], str]]) -> Path | None:
  """One panel per (group, role, panel title, metric path, y label): each seed a dot, the mean a bar
  edge, one colour per variant."""
  panels = [p for p in panels if any(r.values(p[0], p[1], *p[3]) for r in rows)]
  if not panels:
    return None
  plt = pyplot()
  fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False)
  for ax, (group, role, panel_title, metric, ylabel) in zip(axes[0], panels):
    for i, row in enumerate(rows):
      vals = row.values(group, role, *metric)
      if not vals:
        continue
      c = colour(row.row)
      ax.scatter([i] * len(vals), vals, color=c, s=22, zorder=3)
      ax.hlines(statistics.fmean(vals), i - 0.3, i + 0.3, color=c, lw=2.2)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([_short(r) for r in rows], fontsize=7, rotation=45, ha='right')
    ax.set_title(panel_title, fontsize=9)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis='y')
  fig.suptitle(title, fontsize=10)
  return save_figure(fig, path)


def plot_curves(path: Path, title: str, by_task: dict[str, Sequence[Row]]) -> Path | None:
  """Dev ln(PPL) during training (the in-training eval curve; the training NLL where a run has none),
  all rows of a table on one axis, every seed a line in its variant's colour. Below each panel the
  second half of training on its own scale: where the rows end is what the tables compare, and on the
  full scale the early steps flatten it."""
  shown = [t for t, rows in by_task.items() if rows]
  if not shown:
    return None
  plt = pyplot()
  fig, axes = plt.subplots(2, len(shown), figsize=(6.2 * len(shown), 8.0), squeeze=False,
                           gridspec_kw={'height_ratios': (1.1, 1.0)})
  for col, task in enumerate(shown):
    top, zoom = axes[0][col], axes[1][col]
    kind, last = set(), 0
    for row in by_task[task]:
      for j, r in enumerate(row.runs):
        curve = r['train'].get('eval_curve') or r['train'].get('nll_curve') or []
        kind.add('dev' if r['train'].get('eval_curve') else 'train')
        if not curve:
          continue
        steps, vals = zip(*curve)
        last = max(last, steps[-1])
        style = dict(color=colour(row.row), lw=1.2, alpha=0.9 if j == 0 else 0.45)
        top.plot(steps, vals, label=row.label + f" (h{row.model['h']}, d_k {row.model['d_k']})"
                 if j == 0 else None, **style)
        half = [(x, y) for x, y in curve if x >= steps[-1] / 2]
        if half:
          zoom.plot(*zip(*half), marker='.', ms=3, **style)
    ylabel = 'ln(PPL) per subword, ' + (' / '.join(sorted(kind)) or 'dev')
    top.set_title(f'{tasks.get(task).title}, {scale_text(by_task[task])} — one line per run, colour per '
                  f'variant', fontsize=9)
    zoom.set_title(f'the same, second half of training (steps {last // 2}..{last}), own scale',
                   fontsize=9)
    for ax in (top, zoom):
      ax.set_xlabel('step')
      ax.set_ylabel(ylabel)
      ax.grid(alpha=0.3)
    top.legend(fontsize=7)
  fig.suptitle(title, fontsize=10)
  return save_figure(fig, path)


# --------------------------------------------------------------------------------------------------
# The quality sections of tables.md.

SOURCE_TEXT = {'offline': 'the offline corpus built from package-registry text (not WMT14 / lm1b)',
               'text': 'local text files (under $MQA_REPRO_DATA)',
               'tfds': 'TensorFlow Datasets wmt14_translate/de-en / lm1b'}


def setting_lines(results: Path, task: str, rows: Sequence[Row]) -> list[str]:
  """Scale, recipe, data and hardware of our numbers, from the runs' own records and provenance."""
  runs = [r for row in rows for r in row.runs]
  prov = [r.get('provenance', {}) for r in runs]
  m, t = runs[0]['model'], runs[0]['train']
  spec = tasks.get(task)
  layers = f"{m['layers'][0]}+{m['layers'][1]} layers" if spec.encoder else f"{m['layers'][1]} layers"
  tokens = ' + '.join([f"{t['batch_size']} × {t['max_length']}"] * len(spec.sides))
  recipe = lambda k: _distinct(r['train'].get('recipe', {}).get(k, '?') for r in runs)  # noqa: E731
  lines = [
      f"- **Scale**: size `{_distinct(r['size'] for r in runs)}`: d_model {m['d_model']}, {layers}, "
      f"{_distinct(params_text(r['params']) for r in runs)} parameters per row (paper "
      f"{xp.PAPER_PARAMS[task]}); {_distinct(r['train']['steps'] for r in runs)} steps × {tokens} tokens "
      f"(paper: {xp.PAPER_TRAINING[task]}).",
      f"- **Recipe**: peak learning rate {recipe('learning_rate')} (paper {xp.PAPER_LEARNING_RATE}), "
      f"warm-up {recipe('warmup_steps')}, linear decay over the last {recipe('decay_steps')} steps; "
      f"dropout residual / attention / ReLU {_distinct(tuple(r['train'].get('dropout', ())) for r in runs)}; "
      f"label smoothing {recipe('label_smoothing')}.",
      "- **Seeds**: each seed sets initialisation, data order and dropout; cells are mean ± std over a "
      "row's seeds (sample std) where it has more than one.",
  ]
  data_file = results / f'data_{task}.json'
  if data_file.is_file():
    d = json.loads(data_file.read_text(encoding='utf-8'))
    tr = d['train']
    files = ', '.join(f"`{f['path']}` ({f['lines']:,} lines)" for f in tr.get('files', []))
    side = 'targets'
    lines.append(
        f"- **Training data** (`data_{task}.json`): {SOURCE_TEXT.get(runs[0]['data']['source'], '?')}; "
        f"{tr['kept']:,} of {tr['examples']:,} examples fit {t['max_length']} tokens, "
        f"{tr['tokens'][side]:,} target tokens, {tr.get('rows_per_epoch', 0):,} packed rows per epoch"
        + (f"; files: {files}" if files else '') + f"; vocabulary {d['vocabulary']['pieces']:,} "
        f"SentencePiece pieces.")
  devices = _distinct(f"{p.get('device_count', '?')} × {p.get('device_kind', '?')}" for p in prov)
  commits = _distinct(str(p.get('git_commit', '?'))[:10] + (' (dirty)' if p.get('git_dirty') else '')
                      for p in prov)
  lines.append(f"- **Hardware / code**: {devices}, jax {_distinct(p.get('versions', {}).get('jax') for p in prov)}, "
               f"commit {commits}, {_distinct(str(p.get('date_utc', '?'))[:10] for p in prov)}, preset "
               f"`{_distinct(p.get('preset') for p in prov)}`.")
  return lines


def coverage_line(rows: Sequence[Row], group: str) -> str:
  """How much of each eval split the numbers cover."""
  parts = []
  for role in ('dev', 'test'):
    split = next(((r.get('evals', {}).get(group) or {}).get(role) for row in rows for r in row.runs
                  if (r.get('evals', {}).get(group) or {}).get(role)), None)
    if not split:
      continue
    text = f"{split['name']}: {split['sentences']:,} sentences"
    if 'scored_sentences' in split and role == 'dev':
      text += f", {split['scored_sentences']:,} of them scored (the rest exceed the position table)"
    if split.get('sources_truncated'):
      text += f", {split['sources_truncated']} sources truncated for decoding"
    parts.append(text)
  return '- **Coverage**: ' + '; '.join(parts) + '.' if parts else ''


# Per paper table: the differences from multi-head stated under it, as (metric path, role, lower is
# better, name, digits), and the quality plot's panels, as (role, label, metric path, y label).
DIFFERENCES = {1: ((('ln_ppl',), 'dev', True, 'ln(PPL)', 3),
                   (('bleu', 'greedy', 'intl', 'score'), 'test', False, 'BLEU test greedy', 2)),
               3: ((('ln_ppl',), 'dev', True, 'ln(PPL)', 3),)}
PANELS = {1: (('dev', 'ln(PPL) per subword', ('ln_ppl',), 'ln(PPL)'),
              ('test', 'BLEU greedy (tok intl)', ('bleu', 'greedy', 'intl', 'score'), 'BLEU')),
          3: (('dev', 'perplexity per word', ('word_ppl',), 'PPL'),)}
TABLES = {1: table1, 3: table3}


def differences_lines(rows: Sequence[Row], group: str, task: str) -> list[str]:
  """Each row minus multi-head, with the verdict against the seed noise."""
  out = []
  for metric, role, lower, name, digits in DIFFERENCES[tasks.get(task).table]:
    diffs = differences(rows, group, metric, role, lower)
    if diffs:
      out.append(f'- **{name} minus multi-head** (± s.e. of the difference of seed means): ' + '; '.join(
          f"{d['label']} {d['difference']:+.{digits}f}" + (f" ± {d['se']:.{digits}f}" if d['se'] is not None
                                                             else '') + f" ({d['verdict']})" for d in diffs)
          + '.')
  return out


def sections(results: Path, log: Log = print) -> tuple[dict[str, list[str]], list[Path]]:
  """{task: markdown lines} for Tables 1 and 3 (every eval group) and the plots; the files written."""
  by_task = load_rows(results)
  md: dict[str, list[str]] = {}
  written: list[Path] = []
  for task, rows in by_task.items():
    spec = tasks.get(task)
    lines: list[str] = []
    missing = [cfg.ROWS[task][n].label + ('' if n == 'mha' else f' ({n})')
               for n in xp.PAPER_TABLES[spec.table] if n not in {r.row for r in rows}]
    if not rows:
      md[task] = [f'## {spec.table_title}', '', '*Ours: not run.*', '']
      continue
    groups = eval_groups(rows)
    for n, (group, description) in enumerate(groups):
      suffix = chr(ord('a') + n) if len(groups) > 1 else ''
      title = spec.table_title.replace(f'Table {spec.table}', f'Table {spec.table}{suffix}')
      lines += [f'## {title}: {description}', '']
      lines += setting_lines(results, task, rows) + [coverage_line(rows, group), '']
      table, paths = TABLES[spec.table](results, rows, group, log)
      lines += table + ['']
      lines += differences_lines(rows, group, task) + ['']
      if missing:
        lines += [f"Paper rows not run here: {', '.join(missing)}.", '']
      written += paths
    md[task] = lines
  # plots: quality per row with the seed spread, and every run's learning curve
  for task, rows in by_task.items():
    if not rows:
      continue
    spec = tasks.get(task)
    panels = [(g, role, f'{split_name(rows, g, role)}: {label}', metric, ylabel)
              for g, _ in eval_groups(rows) for role, label, metric, ylabel in PANELS[spec.table]]
    name = f'quality_{spec.prefix}.png'
    title = (f"{spec.title} rows — {hardware_text(rows)}, {scale_text(rows)}: each dot a seed, "
             f"bar = mean")
    path = plot_rows(results / name, title, rows, panels)
    if path:
      written.append(path)
      md[task] += [f'![{task} quality per row]({name})', '']
  every = [row for rows in by_task.values() for row in rows]
  dev = [bool(r['train'].get('eval_curve')) for row in every for r in row.runs]
  what = ('Dev ln(PPL) during training (in-domain dev split)' if all(dev) else
          'Training ln(PPL) (no run recorded a dev curve)' if not any(dev) else
          'ln(PPL) during training (dev split where a run recorded it, else training)')
  curves = plot_curves(results / 'learning_curves.png', f'{what} — {hardware_text(every)}',
                       by_task) if every else None
  if curves:
    written.append(curves)
  return md, written
