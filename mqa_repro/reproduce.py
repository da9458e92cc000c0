"""The main job: train, score and decode every run of a preset (rows x seeds), then tabulate
(``mqa-repro reproduce``, cli/reproduce.py; ``reproduce(Options(...))`` from Python).

Presets (mqa_repro.experiment; one code path, only sizes, data and budgets differ):
  smoke  CPU: the 'tiny' twin of every paper row, a few hundred steps on the offline corpus, decoded and
         scored on a few hundred sentences of each eval set. A pipeline check, not a quality claim.
  gpu    the scaled reproduction on real text: d_model 512 at the paper's depth, each row sized to
         train and evaluate in minutes on one H200 (results/notes/presets.md), 3 seeds of multi-head
         and multi-query, full eval sets. Reads its training text from $MQA_REPRO_DATA.
  paper  the paper's configs (211M / 192M parameters, 100k / 136k steps): TPU pods and GPU clusters.

Each run (mqa_repro.experiment.Run: a table row and a seed; the seed sets initialisation, data order and
dropout) in one process, with the vocabulary and the tokenized training text built ONCE per task and
shared by every run:
  train    ``training.Trainer`` in ``<workdirs>/<run name>`` (resumes from its checkpoints), on the
           device mesh of the run's config;
  score    on the same mesh: ln(PPL) per subword on each eval group's dev split; per-WORD perplexity
           for lm (Table 3);
  decode   translate: every greedy decode (dev and test of every group) in one call and every beam-4
           decode (the test sets) in another, each one compiled shape; BLEU (sacrebleu, tok intl and
           13a) and chrF on the detokenised text. Hypotheses are kept under ``<results>/hyps/``.
Eval groups (experiment.eval_groups): the training source's own held-out splits, then the paper's
text when ``$MQA_REPRO_DATA`` holds it (newstest2013 / newstest2014; lm1b heldout shards 10+11).

Each run writes ``<results>/rows/<run name>.json``; ``<results>/data_<task>.json`` records the text
every run of the task trained on; ``<results>/environment.json`` the exact package versions, Python and
OS (report.records.write_environment), once per folder: each record's provenance names it by id. A rerun skips a run whose JSON and run directory exist, unless its
inputs (config or eval sets) changed, which it says; ``--force`` reruns it (training resumes from the
final checkpoint, so only scoring and decoding run again). ``run.json`` keeps one entry per invocation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import socket
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import ml_collections

from mqa_repro import config as cfg
from mqa_repro import costs
from mqa_repro import experiment as xp
from mqa_repro import paths, provenance, tasks
from mqa_repro.report import records

Log = Callable[[str], None]
REPO_ROOT = Path(__file__).resolve().parent.parent
OFFLINE_EVAL = 'offline corpus held-out dev / test (in-domain for our training data)'
PROG = 'mqa-repro reproduce'


@dataclasses.dataclass(frozen=True)
class Options:
  """What one ``reproduce`` invocation runs (cli/reproduce.py documents each flag)."""
  preset: str
  rows: str | None = None              # experiment.parse_runs' spec; None = every row
  seeds: int | None = None             # seeds per row; None = the preset's
  steps: int = 0                       # training steps per run; 0 = the preset's
  eval_sentences: int | None = None    # first N sentences of each eval split; None = the preset's
  data: str | None = None              # replaces the preset's training text
  results: str | None = None           # default ./runs/<preset>/results
  workdirs: str | None = None          # default ./workdirs/<preset>
  prepare_data: bool = False
  skip_bench: bool = False
  no_tables: bool = False
  force: bool = False
  fail_fast: bool = False
  overrides: tuple[str, ...] = ()      # --config.KEY=VALUE, applied to every run last
  argv: tuple[str, ...] = ()           # the command line, for provenance


def _provenance(options: Options, environment: str | None = None) -> dict[str, Any]:
  """The provenance record of this invocation; `environment`: the id of the results folder's
  environment.json entry it ran in (report.records.write_environment)."""
  extra = {'environment': environment} if environment else {}
  return provenance.collect(PROG, options.argv, preset=options.preset, **extra)


# --------------------------------------------------------------------------------------------------
# Plans and configs.


def paper_text_dir() -> Path | None:
  """The real evaluation text: $MQA_REPRO_DATA, else ../shared/data beside the checkout (as CI and the
  tests use it), else None."""
  from mqa_repro.data import sources
  d = sources.resolve_data_dir(None) or REPO_ROOT.parent / 'shared' / 'data'
  return d if d.is_dir() else None


def resolve_source(data: str, log: Log) -> str:
  """'auto' -> 'tfds' when TensorFlow Datasets is installed and its servers answer, else 'offline'."""
  if data != 'auto':
    return data
  try:
    importlib.import_module('tensorflow_datasets')
    socket.create_connection(('storage.googleapis.com', 443), timeout=3).close()
    return 'tfds'
  except (ImportError, OSError):
    log("reproduce: --data auto: TensorFlow Datasets or the internet is not available; training on "
        "the offline corpus instead of WMT14 / lm1b")
    return 'offline'


def task_plan(preset: xp.Preset, task: str, data_flag: str | None, log: Log) -> xp.TaskPlan:
  """The preset's plan for `task` with a concrete source; ``--data`` replaces the preset's text."""
  plan = preset.plan(task)
  if data_flag is None and plan.source != 'auto':
    return plan
  source = resolve_source(data_flag or plan.source, log)
  files = tuple(xp.TEXT_DATA[task].items()) if source == 'text' else ()
  own = OFFLINE_EVAL if source == 'offline' else ''
  return dataclasses.replace(plan, source=source, files=files, own_eval=own)


def run_config(run: xp.Run, preset: xp.Preset, plan: xp.TaskPlan, options: Options,
               data_dir: Path | None) -> ml_collections.ConfigDict:
  """A run's config: the row at the preset's size, the plan's data and budget, the seed, then the
  preset's recipe changes and the user's overrides (last, so they win)."""
  c = cfg.row_config(run.task, run.row, preset.size)
  c.name = run.name(preset.size)
  c.data.source = plan.source
  for key, value in plan.files:
    c.data[key] = ','.join(str(data_dir / v) if data_dir and not Path(v).is_absolute() else v
                           for v in value.split(','))
  c.data.max_train_examples = preset.max_train_examples
  c.data.max_eval_examples = (options.eval_sentences if options.eval_sentences is not None
                              else preset.eval_sentences)
  c.data.seed = c.train.seed = run.seed
  t = c.train
  t.num_train_steps = options.steps or plan.steps or t.num_train_steps
  t.log_every = min(preset.log_every, t.num_train_steps)
  t.eval_every = min(preset.eval_every, t.num_train_steps)
  t.checkpoint_every = min(t.checkpoint_every, t.num_train_steps)
  t.keep_checkpoints = 1
  t.tensorboard = preset.tensorboard
  c.decode.batch_size = preset.decode_batch
  cfg.apply_overrides(c, [*plan.overrides, *options.overrides])
  return cfg.validate(c)


def inputs_key(c: ml_collections.ConfigDict, groups: Sequence[xp.EvalGroup]) -> str:
  """What a run's results depend on, short: its config and its eval sets (a rerun compares them)."""
  from mqa_repro.training import checkpoint
  text = checkpoint.config_to_json(c) + json.dumps([dataclasses.asdict(g) for g in groups], sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Records.


def read_curve(metrics_file: Path) -> list[dict[str, Any]]:
  """metrics.jsonl records by step (a resumed run appends: the last record of a step wins)."""
  records: dict[int, dict] = {}
  if metrics_file.is_file():
    for line in metrics_file.read_text().splitlines():
      if line.strip():
        r = json.loads(line)
        records[int(r['step'])] = r
  return [records[s] for s in sorted(records)]


def _round(x: float, digits: int = 5) -> float:
  return float(f'{x:.{digits}g}')


def _curve(curve: list[dict], key: str) -> list[list[float]]:
  return [[r['step'], _round(r[key])] for r in curve if r.get(key) is not None]


class Progress:
  """One status line per stage: which run, which stage, how long the job has run."""

  def __init__(self, preset: str, total: int, log: Log):
    self.preset, self.total, self.log, self.start = preset, total, log, time.time()
    self.index, self.name = 0, ''

  def row(self, index: int, name: str) -> None:
    self.index, self.name = index, name

  def stage(self, text: str) -> None:
    elapsed = time.strftime('%H:%M:%S', time.gmtime(time.time() - self.start))
    self.log(f'[{self.preset} {self.index}/{self.total} {self.name}] {text}  (elapsed {elapsed})')


# --------------------------------------------------------------------------------------------------
# Data.


def prepare_task(task: str, c: ml_collections.ConfigDict, shared_dir: Path, log: Log) -> Any:
  """The task's TaskData, trained vocabulary included; built once and shared by all of its runs.
  The vocabulary and the token caches do not depend on the run's seed (seed 0 here)."""
  from mqa_repro.data.pipeline import load_task_data
  d = ml_collections.ConfigDict(c.data.to_dict())
  d.seed = 0
  data = load_task_data(task, d, shared_dir, log=log)
  data.train_stream()       # tokenize the training split now (cached on disk for reruns)
  return data


def load_eval_data(task: str, c: ml_collections.ConfigDict, group: xp.EvalGroup, train_data: Any,
                   shared_dir: Path, log: Log) -> Any:
  """The TaskData that reads `group` with the task's vocabulary (the training data itself for the
  source's own splits)."""
  if not group.data_overrides:
    return train_data
  from mqa_repro.data.pipeline import load_task_data
  d = ml_collections.ConfigDict(c.data.to_dict())
  d.update(dict(group.data_overrides))
  d.seed = 0
  d.vocab_path = str(train_data.tokenizer.model_path)   # the task's vocabulary, never a new one
  return load_task_data(task, d, shared_dir / f'eval_{group.key}', log=log)


def data_record(task: str, train_data: Any, eval_data: dict[str, Any], groups: Sequence[xp.EvalGroup],
                data_dir: Path | None) -> dict[str, Any]:
  """Exactly what a task's runs trained and were evaluated on, with counts."""
  from mqa_repro.data import sources

  def files(data: Any, split: str) -> list[dict[str, Any]]:
    return [_file_entry(p, data_dir) for p in data.source.files(data.split_name(split))]

  record = {'task': task, 'vocabulary': {'path': Path(train_data.tokenizer.model_path).name,
                                         'pieces': train_data.tokenizer.vocab_size,
                                         'sha256': train_data.tokenizer.fingerprint},
            'train': {**_without_paths(train_data.summary('train')), 'files': files(train_data, 'train')},
            'eval': {}}
  for group in groups:
    data = eval_data[group.key]
    for role, split in group.splits():
      record['eval'][split.name] = {**_without_paths(data.summary(split.split)), 'group': group.key,
                                    'role': role, 'files': files(data, split.split)}
  record['max_line_chars'] = sources.MAX_LINE_CHARS
  return record


def _without_paths(summary: dict[str, Any]) -> dict[str, Any]:
  """A split summary without its machine-specific paths ('files' lists them relative to the data)."""
  return {k: v for k, v in summary.items() if k != 'from'}


def _file_entry(path: Path, data_dir: Path | None) -> dict[str, Any]:
  from mqa_repro.data import sources
  path = Path(path)
  try:
    shown = str(path.relative_to(data_dir)) if data_dir else str(path)
  except ValueError:
    shown = str(path)
  return {'path': shown, 'lines': sources.count_lines(path),
          'sha256': sources.fingerprint_files([path])}


# --------------------------------------------------------------------------------------------------
# One run.


def train_run(c: ml_collections.ConfigDict, workdir: Path, train_data: Any, mesh, progress: Progress,
              log: Log) -> tuple[float, int]:
  """Train (or resume, or find finished) one run on `mesh`, with the task's shared TaskData (one
  vocabulary, one tokenization for all its runs); returns (seconds spent, the step this call
  started from: 0 fresh, the checkpoint's step when resumed, all steps when already done)."""
  from mqa_repro.training import checkpoint
  from mqa_repro.training.trainer import Trainer
  t0 = time.time()
  done_steps = checkpoint.latest_step(workdir)
  if done_steps is not None and done_steps >= c.train.num_train_steps:
    progress.stage(f'train: already done ({done_steps} steps in {workdir}); reusing the checkpoint')
    return 0.0, done_steps
  progress.stage(f'train {c.train.num_train_steps} steps ({costs.param_count(c.model, c.task):,} params)')
  Trainer(c, workdir, data=train_data, mesh=mesh, log=log).train_and_evaluate()
  return time.time() - t0, done_steps or 0


def decode_jobs(c: ml_collections.ConfigDict, groups: Sequence[xp.EvalGroup], eval_data: dict[str, Any]
                ) -> dict[int, list[tuple[xp.EvalGroup, str, xp.EvalSplit]]]:
  """beam size -> the (group, role, split) it decodes: greedy on every split, beam on the test sets."""
  jobs: dict[int, list] = {1: [], c.decode.beam_size: []}
  for group in groups:
    for role, split in group.splits():
      jobs[1].append((group, role, split))
      if role == 'test' and c.decode.beam_size > 1:
        jobs[c.decode.beam_size].append((group, role, split))
  return {b: j for b, j in jobs.items() if j}


def evaluate_run(c: ml_collections.ConfigDict, workdir: Path, preset: xp.Preset, eval_data: dict[str, Any],
                 groups: Sequence[xp.EvalGroup], results: Path | None, mesh, progress: Progress,
                 log: Log) -> tuple[dict[str, Any], dict[str, float]]:
  """Score and decode a trained run on every eval set, on the mesh it trained on: (evals record,
  wall seconds per stage)."""
  from mqa_repro.decoding import text
  from mqa_repro.evaluation.bleu import bleu, chrf
  from mqa_repro.evaluation.perplexity import perplexity
  from mqa_repro.training import checkpoint

  wall = {'score': 0.0, 'decode': 0.0}
  config, params, tokenizer = checkpoint.load_for_inference(workdir, log=lambda m: None, mesh=mesh)
  evals: dict[str, Any] = {}
  for group in groups:
    data = eval_data[group.key]
    entry: dict[str, Any] = {'description': group.description}
    for role, split in group.splits():
      sources, _ = data.eval_texts(split.split)
      summary = data.summary(split.split)
      out: dict[str, Any] = {'name': split.name, 'sentences': len(sources),
                             'scored_sentences': summary['kept'],
                             'dropped_too_long': summary['dropped_too_long']}
      if role == 'dev':
        progress.stage(f'score {split.name} ({summary["kept"]} of {len(sources)} sentences fit)')
        t = time.time()
        p = perplexity(config, params, data, split.split, mesh=mesh)
        wall['score'] += time.time() - t
        out.update(ln_ppl=p['ln_ppl_per_subword'], tokens=p['tokens'])
        if 'word_perplexity' in p:
          out.update(word_ppl=p['word_perplexity'], words=p['words'])
      entry[role] = out
    evals[group.key] = entry
  if not tasks.get(c.task).bleu:     # nothing to decode for
    return evals, wall

  for beam, jobs in decode_jobs(c, groups, eval_data).items():
    label = 'greedy' if beam == 1 else f'beam{beam}'
    texts = [eval_data[g.key].eval_texts(s.split) for g, _, s in jobs]
    lines = [line for src, _ in texts for line in src]
    progress.stage(f'decode {label}: {", ".join(s.name for _, _, s in jobs)} ({len(lines)} sentences '
                   f'in one call)')
    t = time.time()
    hyps, stats = text.decode_lines(
        config, params, tokenizer, lines, beam_size=beam, alpha=c.decode.alpha,
        batch_size=preset.decode_batch if beam == 1 else preset.beam_batch, log=lambda m: None,
        mesh=mesh)
    seconds = time.time() - t
    wall['decode'] += seconds
    start = 0
    for (group, role, split), (sources, references) in zip(jobs, texts):
      mine = hyps[start:start + len(sources)]
      start += len(sources)
      out = evals[group.key][role]
      out.setdefault('bleu', {})[label] = records.bleu_summary(bleu(mine, references))
      c_f = chrf(mine, references)
      out.setdefault('chrf', {})[label] = {k: c_f[k] for k in ('score', 'signature')}
      out.setdefault('decode', {})[label] = {'call_seconds': round(seconds, 3), 'call_shape': stats['shape'],
                                             'call_sentences': len(lines)}
      out['sources_truncated'] = _truncated(tokenizer, sources, config.model.max_length)
      if label == 'greedy' and role == 'test':
        out['samples'] = [{'source': s, 'reference': r, 'hypothesis': h}
                          for s, r, h in list(zip(sources, references, mine))[:3]]
      (workdir / 'hyps').mkdir(exist_ok=True)
      (workdir / 'hyps' / f'{records.split_file_name(split.name)}.{label}.txt').write_text(
          ''.join(h + '\n' for h in mine), encoding='utf-8')
      if results is not None:
        records.write_lines_xz(results / 'hyps' / c.name / f'{records.split_file_name(split.name)}.{label}.txt.xz', mine)
        refs = results / 'refs' / f'{records.split_file_name(split.name)}.ref.txt.xz'
        if not refs.is_file():
          records.write_lines_xz(refs, references)
          records.write_lines_xz(results / 'refs' / f'{records.split_file_name(split.name)}.src.txt.xz', sources)
  return evals, wall


def _truncated(tokenizer: Any, sources: Sequence[str], max_length: int) -> int:
  """Sources longer than the position table (EOS included): the decoder truncates them."""
  return sum(1 for ids in tokenizer.encode_batch([s for s in sources if s.strip()])
             if len(ids) + 1 > max_length)


def run_record(c: ml_collections.ConfigDict, run: xp.Run, workdir: Path, evals: dict[str, Any],
               wall: dict[str, float], inputs: str, started_at: int = 0) -> records.RunRecord:
  """The results JSON of one run (records.RunRecord, without its provenance). `started_at`: the step
  this process's training began from (train_run); wall_seconds.train covers only the steps after it,
  so a run resumed across processes (a command's time limit) says how much its time leaves out."""
  curve = read_curve(workdir / 'metrics.jsonl')
  last = next((r for r in reversed(curve) if r.get('train_loss') is not None), {})
  m = c.model
  return {
      'schema': records.RUN_SCHEMA, 'name': c.name, 'task': c.task, 'row': c.row, 'seed': run.seed,
      'label': c.label, 'in_paper': c.row in cfg.PAPER_ROWS[c.task], 'size': c.size, 'inputs': inputs,
      'model': {'h': m.num_heads, 'g': m.num_kv_heads, 'd_k': m.qk_dim, 'd_v': m.v_dim,
                'd_model': m.d_model, 'd_ff': m.d_ff, 'window': m.window,
                'layers': [m.encoder_layers, m.decoder_layers], 'vocab_size': m.vocab_size},
      'params': costs.param_count(m, c.task),
      'paper_params': costs.param_count(cfg.row_config(c.task, c.row, 'paper').model, c.task),
      'train': {'steps': int(last.get('step', 0)), 'batch_size': c.data.batch_size,
                'max_length': c.data.max_length, 'final_loss': last.get('train_loss'),
                'final_nll': last.get('train_nll'),
                'loss_curve': _curve(curve, 'train_loss'), 'nll_curve': _curve(curve, 'train_nll'),
                'eval_curve': _curve(curve, 'eval_ln_ppl'),
                'tokens_per_s': last.get('tokens_per_s'), 'step_time_s': last.get('step_time_s'),
                'mfu': last.get('mfu'), 'started_at_step': started_at,
                'recipe': {k: c.train[k] for k in ('optimizer', 'learning_rate', 'warmup_steps',
                                                   'decay_steps', 'label_smoothing', 'z_loss', 'seed')},
                'dropout': [m.dropout_rate, m.attention_dropout_rate, m.relu_dropout_rate]},
      'data': {'source': c.data.source, 'vocab': Path(c.data.vocab_path).name,
               'max_train_examples': c.data.max_train_examples,
               'eval_sentences_limit': c.data.max_eval_examples, 'seed': c.data.seed},
      'evals': evals,
      'wall_seconds': {k: round(v, 2) for k, v in wall.items()},
  }


# --------------------------------------------------------------------------------------------------
# The job.


def run_bench(preset: xp.Preset, out_file: Path, options: Options, log: Log,
              environment: str | None = None) -> str:
  """Run the speed benchmark (mqa_repro.bench.run_benchmark); returns a status line for run.json."""
  from mqa_repro import bench
  result = bench.run_benchmark(size=preset.bench_size, sweeps=preset.bench_sweeps, out=str(out_file),
                               argv=list(options.argv), log=log)
  # say which command really produced it
  result['provenance'].update(command=_provenance(options)['command'], preset=preset.name,
                              **({'environment': environment} if environment else {}))
  records.write_json(out_file, result)
  return 'done' if out_file.is_file() else 'ran, but wrote no bench.json'


def _skip_reason(results: Path, workdir: Path, name: str, inputs: str) -> tuple[bool, str]:
  """(skip, why): a run is done when this checkout's run directory and its results JSON, made from the
  same inputs, both exist. Results committed in a fresh clone are replaced by the user's own run."""
  path = results / 'rows' / f'{name}.json'
  if not path.is_file():
    return False, 'no results yet'
  if not (workdir / 'config.json').is_file():
    return False, f'results JSON exists but no run directory {workdir} (another checkout\'s run)'
  old = json.loads(path.read_text(encoding='utf-8'))
  if old.get('inputs') != inputs:
    return False, 'its config or eval sets changed since its results were written'
  return True, (f"done ({str(old.get('provenance', {}).get('date_utc', '?'))[:16]}, same config and eval "
                f"sets; --force reruns it)")


def default_results(preset: str) -> Path:
  """Where a preset's results go unless --results says otherwise: under the working directory, apart
  from the results committed with the repository (results/), which a run never overwrites."""
  return Path('runs') / preset / 'results'


class _History:
  """This invocation's entry in ``run.json``'s history, written when it starts and after every run,
  so a process cut short (a command's time limit, a lost machine) leaves what it did and says it did
  not finish. `results` None (not the main process): writes nothing."""

  def __init__(self, results: Path | None, preset: str, provenance: dict[str, Any]):
    self.file, self.start = (results / 'run.json' if results else None), time.time()
    old = (records.read_json(self.file) if self.file else None) or {}
    self.entries = old.get('history', [old] if old else [])    # a file from before the history existed
    self.entry = {'preset': preset, 'finished': False, 'wall_seconds': 0.0, 'runs': {},
                  'bench': 'not reached', 'provenance': provenance}
    self.entries.append(self.entry)
    self._write()

  def update(self, status: dict[str, str], bench: str | None = None, finished: bool = False) -> None:
    self.entry.update(runs=dict(status), wall_seconds=round(time.time() - self.start, 1),
                      finished=finished)
    if bench is not None:
      self.entry['bench'] = bench
    self._write()

  def _write(self) -> None:
    if self.file:
      records.write_json(self.file, {'history': self.entries})


def reproduce(options: Options, log: Log = print) -> int:
  """Run `options` (module docstring); the exit status: 0, or 1 when a run failed."""
  import jax

  from mqa_repro.training import sharding

  args = options
  preset = xp.PRESETS[args.preset]
  # Results, run directories and the shared vocabularies / token caches stay on local disk (gs://
  # is for a single run's --workdir: mqa_repro/paths.py).
  results = paths.require_local(args.results or default_results(preset.name), '--results', PROG)
  workdirs = paths.require_local(args.workdirs or Path('runs') / preset.name / 'work', '--workdirs',
                                 PROG)
  runs = xp.parse_runs(args.rows, preset, args.seeds)
  data_dir = paper_text_dir()
  needs_dir = preset.needs_data_dir and args.data is None
  if (args.data == 'text' or needs_dir) and data_dir is None:
    raise ValueError(f"{'--data text' if args.data == 'text' else f'preset {preset.name}'} reads its "
                     f"text from $MQA_REPRO_DATA (or ../shared/data beside the checkout), which is not set "
                     f"or not a directory")
  log(f"reproduce: real evaluation text: {data_dir or 'none ($MQA_REPRO_DATA unset): in-domain eval only'}")
  is_main = jax.process_index() == 0
  start = time.time()
  status: dict[str, str] = {}
  progress = Progress(preset.name, len(runs), log)
  log(f'reproduce: preset {preset.name} ({preset.description}); {len(runs)} runs; results -> {results}; '
      f'run directories -> {workdirs}')
  # The exact package versions, once per results folder; every record below names it by id.
  env_id = records.write_environment(results, log)['id'] if is_main else None
  # --prepare-data runs nothing to record
  history = _History(results if is_main and not args.prepare_data else None, preset.name,
                     _provenance(options, env_id))

  # In the order the runs were asked for, one task at a time (its data is prepared once).
  for task in dict.fromkeys(r.task for r in runs):
    todo = [(i, r) for i, r in enumerate(runs, 1) if r.task == task]
    plan = task_plan(preset, task, args.data, log)
    groups = xp.eval_groups(task, plan.source, data_dir, plan.own_eval)
    configs = {r: run_config(r, preset, plan, options, data_dir) for _, r in todo}
    keys = {r: inputs_key(c, groups) for r, c in configs.items()}
    pending = []
    for i, r in todo:
      skip, why = _skip_reason(results, workdirs / configs[r].name, configs[r].name, keys[r])
      if skip and not args.force:
        status[configs[r].name] = f'skipped: {why}'
        log(f'reproduce: {configs[r].name}: skipped: {why}')
      else:
        pending.append((i, r))
        if why != 'no results yet':
          log(f'reproduce: {configs[r].name}: running again: {why}')
    history.update(status)
    if not pending and not args.prepare_data:
      continue
    # One vocabulary and one tokenization per task (and per data settings), shared by its runs.
    first = configs[(pending or todo)[0][1]]
    shared_dir = workdirs / f'data_{task}_{plan.source}'
    progress.row((pending or todo)[0][0], f'{task} data')
    progress.stage(f'vocabulary + tokenized {plan.source} data in {shared_dir}')
    train_data = prepare_task(task, first, shared_dir, log)
    eval_data = {g.key: load_eval_data(task, first, g, train_data, shared_dir, log) for g in groups}
    record = data_record(task, train_data, eval_data, groups, data_dir)
    if is_main:
      records.write_json(results / f'data_{task}.json', record)
    if args.prepare_data:
      for g in groups:   # tokenize every eval split now too, so a carried cache holds them
        for _, split in g.splits():
          eval_data[g.key].summary(split.split)
      continue
    for i, r in pending:
      c = configs[r]
      c.data.vocab_path = str(train_data.tokenizer.model_path)
      progress.row(i, c.name)
      workdir = workdirs / c.name
      try:
        t0 = time.time()
        mesh = sharding.make_mesh(c.mesh)     # training, scoring and decoding all run on it
        train_seconds, started_at = train_run(c, workdir, train_data, mesh, progress, log)
        wall = {'train': train_seconds}
        evals, more = evaluate_run(c, workdir, preset, eval_data, groups, results if is_main else None,
                                   mesh, progress, log)
        wall.update(more, total=time.time() - t0)
        result = run_record(c, r, workdir, evals, wall, keys[r], started_at)
      except Exception as e:  # keep going: one broken run should not cost the other runs' hours
        status[c.name] = f'failed: {type(e).__name__}: {e}'
        log(f'reproduce: {c.name} FAILED: {type(e).__name__}: {e}')
        history.update(status)
        if args.fail_fast:
          raise
        continue
      result['provenance'] = _provenance(options, env_id)
      if is_main:
        records.write_json(results / 'rows' / f'{c.name}.json', result)
      status[c.name] = 'done'
      history.update(status)
      resumed = f' from step {started_at}' if started_at else ''
      progress.stage(f"done in {result['wall_seconds']['total']:.0f}s (train {wall['train']:.0f}s{resumed}, "
                     f"score {wall['score']:.0f}s, decode {wall['decode']:.0f}s)")

  if args.prepare_data:
    log(f'reproduce: data prepared under {workdirs} (vocabularies and token caches)')
    return 0
  bench_status = 'skipped (--skip-bench)'
  if not args.skip_bench and is_main:
    progress.row(len(runs), 'bench')
    progress.stage(f'speed benchmark at size {preset.bench_size!r}')
    try:
      bench_status = run_bench(preset, results / 'bench.json', options, log, env_id)
    except Exception as e:
      bench_status = f'failed: {type(e).__name__}: {e}'
    log(f'reproduce: bench {bench_status}')

  wall = time.time() - start
  if is_main:
    history.update(status, bench=bench_status, finished=True)
    if not args.no_tables:
      from mqa_repro.report.tables import write_tables
      written = write_tables(results, log=log)
      log(f"reproduce: wrote {', '.join(str(p) for p in written)}")
  failed = [n for n, s in status.items() if s.startswith('failed')]
  ran = [n for n, s in status.items() if s == 'done']
  log(f'reproduce: {preset.name} finished in {wall / 60:.1f} min; {len(ran)} runs done, '
      f'{len(status) - len(ran) - len(failed)} skipped' + (f', FAILED: {", ".join(failed)}' if failed else ''))
  return 1 if failed else 0
