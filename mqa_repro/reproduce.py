"""The main job: train, decode and score every row of the paper's Tables 1 and 3, then tabulate.

    mqa-repro reproduce --preset smoke|gpu|paper [--rows wmt_mha,lm_mqa,...] [--steps N]
                        [--eval-sentences N] [--data offline|text|tfds|auto] [--results DIR]
                        [--workdirs DIR] [--skip-bench] [--force] [--config.key=value ...]

Presets (one code path; only sizes and budgets differ):
  smoke  CPU, about 10 minutes on 2 cores: the 'tiny' twin of every paper row, a few hundred steps on the
         offline corpus, decoded (greedy and beam 4) and scored on a few hundred sentences of each eval set.
  gpu    the 'gpu' size (d_model 512, 6+6 layers), about 8 minutes per row on one H100, full eval sets.
  paper  the paper's configs (211M / 192M parameters, 100k / 136k steps): TPU pods and GPU clusters.

For each row, in one process (the vocabulary and the tokenized training data are built ONCE per task and
shared by every row, so rows differ only in their model):
  train    ``train.Trainer`` in ``<workdirs>/<preset>/<config name>`` (resumes from its checkpoints);
  score    ln(PPL) per subword on each eval set's dev split; per-WORD perplexity for lm (Table 3);
  decode   translate: greedy on dev and test, beam 4 on test, BLEU (sacrebleu, tok intl and 13a) on the
           detokenised text.
Eval sets: the data source's own dev/test (the offline corpus' held-out split: in-domain), plus, when
``$MQA_REPRO_DATA`` holds them and the source is the offline corpus, the REAL newstest2013 / newstest2014
(translate) and lm1b heldout shards (lm): the paper's evaluation text, out of domain for our models.

Each row writes ``<results>/<preset>/rows/<config name>.json`` (schema: :func:`run_row`; provenance:
:func:`provenance`); a rerun skips rows whose JSON and run directory exist unless ``--force``. The speed benchmark
(``mqa_repro.bench.run_benchmark``) writes ``bench.json`` beside them, then ``tables.write_tables`` turns
everything into ``tables.md``, CSV files and plots. ``run.json`` records the invocation's wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import importlib.metadata
import inspect
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import ml_collections

from mqa_repro import config as cfg

Log = Callable[[str], None]
SCHEMA_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parent.parent
BLEU_KEEP = ('score', 'signature', 'bp', 'sys_len', 'ref_len', 'precisions')


# --------------------------------------------------------------------------------------------------
# Presets.


@dataclasses.dataclass(frozen=True)
class Preset:
  name: str
  size: str                    # row_config size: 'tiny' | 'gpu' | 'paper'
  data: str                    # 'offline' | 'text' | 'tfds' | 'auto' (tfds when reachable, else offline)
  train_steps: int             # 0 = the size's num_train_steps
  max_train_examples: int      # bounds vocabulary training and tokenization; 0 = all
  eval_sentences: int          # first N sentences of every eval split; 0 = all
  decode_batch: int            # sentences per decode batch (one compiled shape per eval set when >= N)
  log_every: int
  eval_every: int              # in-training dev evaluation; 0 = only ours after training
  tensorboard: bool
  bench_size: str              # bench.run_benchmark(size=...): 'tiny' (CPU twin) or 'paper' (Table 2's setting)
  bench_sweeps: bool           # the length / batch / kv-heads sweeps (doubles the benchmark's time)
  description: str
  overrides: tuple[str, ...] = ()   # config overrides for every row, before the user's


PRESETS = {
    'smoke': Preset('smoke', 'tiny', 'offline', train_steps=300, max_train_examples=60_000,
                    eval_sentences=300, decode_batch=300, log_every=20, eval_every=0, tensorboard=False,
                    bench_size='tiny', bench_sweeps=False,
                    description='tiny CPU twins of every paper row; a pipeline check, not a quality claim',
                    # 300 steps of a 0.3M-parameter model: the paper's step size 0.01 leaves it near
                    # unigram statistics (ln PPL 5.2); 0.1 gets to 4.5 in the same time. Recipe otherwise
                    # the paper's (Adafactor, rsqrt decay, dropout, label smoothing).
                    overrides=('train.learning_rate=0.1',)),
    'gpu': Preset('gpu', 'gpu', 'offline', train_steps=0, max_train_examples=0, eval_sentences=0,
                  decode_batch=256, log_every=100, eval_every=0, tensorboard=True, bench_size='paper',
                  bench_sweeps=True,
                  description='scaled-down rows, about 8 minutes each on one H100'),
    'paper': Preset('paper', 'paper', 'auto', train_steps=0, max_train_examples=0, eval_sentences=0,
                    decode_batch=128, log_every=100, eval_every=0, tensorboard=True, bench_size='paper',
                    bench_sweeps=True,
                    description="the paper's exact configurations (TPU pod / GPU cluster scale)"),
}

# data='text': small REAL files under $MQA_REPRO_DATA (tests and pipeline checks; far too little to train on).
TEXT_DATA = {
    'translate': {'train_files': 'wmt14_en_de/train_subsets/europarl_v7_first1000.raw',
                  'dev_files': 'wmt14_en_de/newstest2013', 'test_files': 'wmt14_en_de/newstest2014'},
    'lm': {'train_files': 'lm1b/news.en.heldout-00012+00013-of-00050.txt',
           'dev_files': 'lm1b/news.en.heldout-00010+00011-of-00050.txt',
           'test_files': 'lm1b/news.en.heldout-00000-of-00050.first100.txt'},
}


@dataclasses.dataclass(frozen=True)
class EvalSplit:
  name: str                    # what the tables call it, e.g. 'newstest2014'
  split: str                   # the TaskData split: 'dev' | 'test'


@dataclasses.dataclass(frozen=True)
class EvalGroup:
  """One evaluation text (a dev and maybe a test split) and the TaskData that reads it."""
  key: str                     # 'offline' | 'newstest' | 'lm1b'
  description: str
  dev: EvalSplit
  test: EvalSplit | None
  data_overrides: dict         # fields of config.data; {} = the training data's own splits


def paper_text_dir() -> Path | None:
  """The real evaluation text: $MQA_REPRO_DATA, else ../shared/data beside the checkout (as CI and the
  tests use it), else None."""
  from mqa_repro.data import sources
  d = sources.resolve_data_dir(None) or REPO_ROOT.parent / 'shared' / 'data'
  return d if d.is_dir() else None


def text_files(task: str, data_dir: Path | None) -> dict[str, str]:
  """TEXT_DATA with absolute paths under `data_dir`."""
  return {k: str(data_dir / v) if data_dir and v else v for k, v in TEXT_DATA[task].items()}


def eval_groups(task: str, source: str, data_dir: Path | None) -> list[EvalGroup]:
  """The eval sets of a task: the source's own split first, then the real text under `data_dir`."""
  paper_text = data_dir is not None and data_dir.is_dir()
  files = text_files(task, data_dir)
  if task == 'translate':
    newstest = EvalGroup('newstest', 'WMT newstest2013 (dev) / newstest2014 (test): the paper\'s sets',
                         EvalSplit('newstest2013', 'dev'), EvalSplit('newstest2014', 'test'),
                         {'source': 'text', 'train_files': '', 'dev_files': files['dev_files'],
                          'test_files': files['test_files']})
    if source in ('text', 'tfds'):   # their dev/test ARE newstest2013/2014
      return [dataclasses.replace(newstest, data_overrides={})]
    own = EvalGroup('offline', 'offline corpus held-out dev / test (in-domain for our training data)',
                    EvalSplit('offline dev', 'dev'), EvalSplit('offline test', 'test'), {})
    return [own] + ([newstest] if paper_text else [])
  lm1b_file = files['dev_files']
  lm1b = EvalGroup('lm1b', f'lm1b heldout shards 10+11 ({Path(lm1b_file).name}): real Billion-Word text',
                   EvalSplit('lm1b heldout 10+11', 'dev'), None,
                   {'source': 'text', 'train_files': '', 'dev_files': lm1b_file, 'test_files': ''})
  if source == 'text':
    return [dataclasses.replace(lm1b, data_overrides={})]
  if source == 'tfds':
    return [EvalGroup('lm1b', 'lm1b heldout (tfds test split, 306,688 sentences): the paper\'s dev set',
                      EvalSplit('lm1b heldout', 'dev'), None, {})]
  own = EvalGroup('offline', 'offline corpus held-out dev (in-domain for our training data)',
                  EvalSplit('offline dev', 'dev'), None, {})
  return [own] + ([lm1b] if paper_text else [])


# --------------------------------------------------------------------------------------------------
# Provenance.


def _version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return 'not installed'


def _git(*args: str) -> str:
  try:
    return subprocess.run(['git', *args], capture_output=True, text=True, check=True, cwd=REPO_ROOT,
                          timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return ''


def provenance(argv: Sequence[str], preset: str, command: str = 'mqa-repro reproduce') -> dict[str, Any]:
  """Where a number came from: device, software versions, code version, command, date."""
  import jax
  devices = jax.devices()
  dirty = _git('status', '--porcelain', '--untracked-files=no', '--', '.', ':!results')  # code, not outputs
  return {
      'preset': preset,
      'command': ' '.join([command, *map(shlex.quote, argv)]),
      'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'git_commit': _git('rev-parse', 'HEAD') or 'unknown',
      'git_dirty': bool(dirty),
      'device_kind': devices[0].device_kind,
      'platform': devices[0].platform,
      'device_count': jax.device_count(),
      'process_count': jax.process_count(),
      'host': {'machine': platform.machine(), 'cpus': os.cpu_count(), 'python': platform.python_version()},
      # where the text came from (data dirs) and how JAX was steered (flags, distributed runs)
      'env': {k: v for k, v in sorted(os.environ.items())
              if k.startswith(('MQA_REPRO_', 'XLA_FLAGS', 'JAX_')) or k == 'CUDA_VISIBLE_DEVICES'},
      'versions': {p: _version(p) for p in ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint',
                                            'sacrebleu', 'sentencepiece', 'numpy')},
  }


# --------------------------------------------------------------------------------------------------
# Rows.


def parse_rows(spec: str | None) -> list[tuple[str, str]]:
  """'wmt_mha,lm_mqa' -> [('translate', 'mha'), ('lm', 'mqa')]; 'wmt' / 'lm' = that table's paper rows,
  'all' = every row including grouped-query; None = the paper's rows of both tables."""
  prefixes = {'wmt': 'translate', 'lm': 'lm'}
  if not spec:
    return [(t, r) for t in ('translate', 'lm') for r in cfg.PAPER_ROWS[t]]
  out: list[tuple[str, str]] = []
  for item in (s.strip() for s in spec.split(',') if s.strip()):
    if item == 'all':
      out += [(t, r) for t in ('translate', 'lm') for r in cfg.ROWS[t]]
    elif item in prefixes:
      out += [(prefixes[item], r) for r in cfg.PAPER_ROWS[prefixes[item]]]
    else:
      prefix, _, row = item.partition('_')
      task = prefixes.get(prefix)
      if task is None or row not in cfg.ROWS[task]:
        known = [f'{p}_{r}' for p, t in prefixes.items() for r in cfg.ROWS[t]]
        raise ValueError(f'unknown row {item!r}; rows are {", ".join(known)} (or wmt, lm, all)')
      out.append((task, row))
  seen: set = set()
  return [r for r in out if not (r in seen or seen.add(r))]   # keep order, drop repeats


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


def row_config(task: str, row: str, preset: Preset, source: str, args: argparse.Namespace,
               overrides: Sequence[str], data_dir: Path | None = None) -> ml_collections.ConfigDict:
  """A table row at the preset's size with the preset's budgets; user overrides applied last."""
  c = cfg.row_config(task, row, preset.size)
  c.data.source = source
  if source == 'text':
    c.data.update(text_files(task, data_dir))
  c.data.max_train_examples = preset.max_train_examples
  c.data.max_eval_examples = args.eval_sentences if args.eval_sentences is not None else preset.eval_sentences
  t = c.train
  t.num_train_steps = args.steps or preset.train_steps or t.num_train_steps
  t.log_every = min(preset.log_every, t.num_train_steps)
  t.eval_every = preset.eval_every
  t.checkpoint_every = min(t.checkpoint_every, t.num_train_steps)
  t.keep_checkpoints = 1
  t.tensorboard = preset.tensorboard
  c.decode.batch_size = preset.decode_batch
  cfg.apply_overrides(c, [*preset.overrides, *overrides])
  return cfg.validate(c)


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


def _bleu_summary(result: dict[str, dict]) -> dict[str, dict]:
  return {tok: {k: r[k] for k in BLEU_KEEP if k in r} for tok, r in result.items()}


class Progress:
  """One status line per stage: which row, which stage, how long the job has run."""

  def __init__(self, preset: str, total: int, log: Log):
    self.preset, self.total, self.log, self.start = preset, total, log, time.time()
    self.index, self.name = 0, ''

  def row(self, index: int, name: str) -> None:
    self.index, self.name = index, name

  def stage(self, text: str) -> None:
    elapsed = time.strftime('%H:%M:%S', time.gmtime(time.time() - self.start))
    self.log(f'[{self.preset} {self.index}/{self.total} {self.name}] {text}  (elapsed {elapsed})')


def _load_eval_data(task: str, c: ml_collections.ConfigDict, group: EvalGroup, train_data: Any,
                    shared_dir: Path, log: Log) -> Any:
  if not group.data_overrides:
    return train_data
  from mqa_repro.data.pipeline import load_task_data
  d = ml_collections.ConfigDict(c.data.to_dict())
  d.update(group.data_overrides)
  d.vocab_path = str(train_data.tokenizer.model_path)   # the task's vocabulary, never a new one
  return load_task_data(task, d, shared_dir / f'eval_{group.key}', log=log)


def run_row(c: ml_collections.ConfigDict, workdir: Path, train_data: Any, eval_data: dict[str, Any],
            groups: Sequence[EvalGroup], progress: Progress, log: Log) -> dict[str, Any]:
  """Train (or resume) one row, then score and decode it on every eval set; returns its result dict.

  Result keys: name, task, row, label, in_paper, size, model {h, g, d_k, d_v, d_model, d_ff, window,
  layers, vocab_size}, params, paper_params, train {steps, batch_size, max_length, final_loss,
  final_nll, loss_curve [[step, loss]], nll_curve, tokens_per_s, step_time_s}, data {source, vocab,
  max_train_examples}, evals {group: {description, dev: {...}, test: {...}}}, wall_seconds
  {train, score, decode, total}. Each split holds name, sentences, ln_ppl, tokens (word_ppl, words
  for lm) and, for translate, bleu {greedy[, beam4]: {intl, 13a: {score, signature, ...}}}.
  """
  from mqa_repro import checkpoint, decode_cli, evaluate, train

  wall: dict[str, float] = {'train': 0.0, 'score': 0.0, 'decode': 0.0}
  t0 = time.time()
  done_steps = _finished_step(workdir)
  if done_steps is None or done_steps < c.train.num_train_steps:
    progress.stage(f'train {c.train.num_train_steps} steps ({cfg.param_count(c.model, c.task):,} params)')
    trainer = train.Trainer(c, workdir, log=log, with_data=False)
    trainer.data = train_data   # the task's shared TaskData: one vocabulary, one tokenization
    if train_data.tokenizer.vocab_size > c.model.vocab_size:
      raise ValueError(f'vocabulary has {train_data.tokenizer.vocab_size} pieces but the model only '
                       f'{c.model.vocab_size}')
    trainer.train_and_evaluate()
    del trainer
  else:
    progress.stage(f'train: already done ({done_steps} steps in {workdir}); reusing the checkpoint')
  wall['train'] = time.time() - t0

  config, params, tokenizer = checkpoint.load_for_inference(workdir, log=lambda m: None)
  curve = read_curve(workdir / 'metrics.jsonl')
  last = curve[-1] if curve else {}
  m = c.model
  result: dict[str, Any] = {
      'name': c.name, 'task': c.task, 'row': c.row, 'label': c.label,
      'in_paper': c.row in cfg.PAPER_ROWS[c.task], 'size': c.size,
      'model': {'h': m.num_heads, 'g': m.num_kv_heads, 'd_k': m.qk_dim, 'd_v': m.v_dim,
                'd_model': m.d_model, 'd_ff': m.d_ff, 'window': m.window,
                'layers': [m.encoder_layers, m.decoder_layers], 'vocab_size': m.vocab_size},
      'params': cfg.param_count(m, c.task),
      'paper_params': cfg.param_count(cfg.row_config(c.task, c.row, 'paper').model, c.task),
      'train': {'steps': int(last.get('step', 0)), 'batch_size': c.data.batch_size,
                'max_length': c.data.max_length, 'final_loss': last.get('train_loss'),
                'final_nll': last.get('train_nll'),
                'loss_curve': [[r['step'], _round(r['train_loss'])] for r in curve
                               if r.get('train_loss') is not None],
                'nll_curve': [[r['step'], _round(r['train_nll'])] for r in curve
                              if r.get('train_nll') is not None],
                'tokens_per_s': last.get('tokens_per_s'), 'step_time_s': last.get('step_time_s'),
                'recipe': {k: c.train[k] for k in ('optimizer', 'learning_rate', 'warmup_steps',
                                                   'decay_steps', 'label_smoothing', 'z_loss')},
                'dropout': [m.dropout_rate, m.attention_dropout_rate, m.relu_dropout_rate]},
      'data': {'source': c.data.source, 'vocab': Path(c.data.vocab_path).name,
               'vocab_pieces': tokenizer.vocab_size, 'max_train_examples': c.data.max_train_examples,
               'eval_sentences_limit': c.data.max_eval_examples},
      'evals': {},
  }

  for group in groups:
    data = eval_data[group.key]
    entry: dict[str, Any] = {'description': group.description}
    for role, split in (('dev', group.dev), ('test', group.test)):
      if split is None:
        continue
      sources, references = data.eval_texts(split.split)
      out: dict[str, Any] = {'name': split.name, 'sentences': len(sources)}
      if role == 'dev':
        progress.stage(f'score {split.name} ({len(sources)} sentences)')
        t = time.time()
        p = evaluate.perplexity(config, params, data, split.split)
        wall['score'] += time.time() - t
        out.update(ln_ppl=p['ln_ppl_per_subword'], tokens=p['tokens'])
        if c.task == 'lm':
          out.update(word_ppl=p['word_perplexity'], words=p['words'])
      if c.task == 'translate':
        out['bleu'], out['decode_seconds'] = {}, {}
        for beam in ((1,) if role == 'dev' else (1, c.decode.beam_size)):
          label = 'greedy' if beam == 1 else f'beam{beam}'
          progress.stage(f'decode {split.name} {label} ({len(sources)} sentences)')
          t = time.time()
          hyps, stats = decode_cli.decode_lines(
              config, params, tokenizer, sources, beam_size=beam, alpha=c.decode.alpha,
              batch_size=min(c.decode.batch_size, max(len(sources), 1)), log=lambda m: None)
          wall['decode'] += time.time() - t
          out['bleu'][label] = _bleu_summary(evaluate.bleu(hyps, references))
          out['decode_seconds'][label] = round(stats['seconds'], 3)
          out['sources_truncated'] = stats['truncated']   # longer than the model's position table
          if label == 'greedy' and role == 'test':
            out['samples'] = [{'source': s, 'reference': r, 'hypothesis': h}
                              for s, r, h in list(zip(sources, references, hyps))[:3]]
          hyp_file = workdir / 'hyps' / f"{split.name.replace(' ', '_')}.{label}.txt"
          hyp_file.parent.mkdir(exist_ok=True)
          hyp_file.write_text(''.join(h + '\n' for h in hyps), encoding='utf-8')
      entry[role] = out
    result['evals'][group.key] = entry
  wall['total'] = time.time() - t0
  result['wall_seconds'] = {k: round(v, 2) for k, v in wall.items()}
  return result


def _finished_step(workdir: Path) -> int | None:
  """The latest committed checkpoint step of a row's workdir (orbax names committed steps by number)."""
  d = workdir / 'checkpoints'
  steps = [int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit()] if d.is_dir() else []
  return max(steps) if steps else None


# --------------------------------------------------------------------------------------------------
# The job.


def prepare_task(task: str, c: ml_collections.ConfigDict, shared_dir: Path, log: Log) -> Any:
  """The task's TaskData, trained vocabulary included; built once and shared by all of its rows."""
  from mqa_repro.data.pipeline import load_task_data
  data = load_task_data(task, c.data, shared_dir, log=log)
  data.train_stream()       # tokenize the training split now (cached on disk for reruns)
  return data


def run_bench(preset: Preset, out_file: Path, argv: Sequence[str], log: Log) -> str:
  """Run the lead's speed benchmark if the module exists; returns a status line for run.json."""
  try:
    bench = importlib.import_module('mqa_repro.bench')
  except ImportError as e:
    return f'skipped: mqa_repro.bench is not available ({e})'
  fn = getattr(bench, 'run_benchmark', None)
  if fn is None:
    return 'skipped: mqa_repro.bench has no run_benchmark()'
  settings = getattr(bench, 'SETTINGS', None)
  if settings is not None and preset.bench_size not in settings:
    return f'skipped: mqa_repro.bench has no size {preset.bench_size!r} (it has {sorted(settings)})'
  accepted = inspect.signature(fn).parameters
  wanted = {'size': preset.bench_size, 'sweeps': preset.bench_sweeps, 'out': str(out_file),
            'argv': list(argv), 'log': log}
  result = fn(**{k: v for k, v in wanted.items() if k in accepted})
  if isinstance(result, dict):   # say which command really produced it
    prov = result.setdefault('provenance', {})
    prov.update(command=provenance(argv, preset.name)['command'], preset=preset.name)
    _write_json(out_file, result)
  return 'done' if out_file.is_file() else 'ran, but wrote no bench.json'


def _write_json(path: Path, obj: Any) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix('.tmp')
  tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
  os.replace(tmp, path)   # a killed run never leaves a half-written row that a rerun would skip


def reproduce(args: argparse.Namespace, overrides: Sequence[str], argv: Sequence[str],
              log: Log = print) -> int:
  import logging

  import jax

  # The decoder warns per batch when tiny models cap hypotheses at max_length; the row JSON counts
  # truncated sources instead of flooding the progress display.
  logging.getLogger('mqa_repro.decode').setLevel(logging.ERROR)
  preset = PRESETS[args.preset]
  results = Path(args.results) / preset.name
  workdirs = Path(args.workdirs) / preset.name
  rows = parse_rows(args.rows)
  source = resolve_source(args.data or preset.data, log)
  data_dir = paper_text_dir()
  if source == 'text' and data_dir is None:
    raise ValueError('--data text reads the small real files under $MQA_REPRO_DATA (or ../shared/data), '
                     'which is not set or not a directory')
  log(f"reproduce: real evaluation text: {data_dir or 'none ($MQA_REPRO_DATA unset): in-domain eval only'}")
  is_main = jax.process_index() == 0
  start = time.time()
  status: dict[str, str] = {}
  progress = Progress(preset.name, len(rows), log)
  log(f'reproduce: preset {preset.name} ({preset.description}); {len(rows)} rows; data {source}; '
      f'results -> {results}; runs -> {workdirs}')

  for task in ('translate', 'lm'):
    todo = [(i, r) for i, (t, r) in enumerate(rows, 1) if t == task]
    configs = {r: row_config(task, r, preset, source, args, overrides, data_dir) for _, r in todo}
    # Skip a row only when THIS checkout's run produced its JSON (its run directory exists): results
    # committed in a fresh clone are replaced by the user's own run, not mistaken for it.
    done = {r for _, r in todo if (results / 'rows' / f'{configs[r].name}.json').is_file()
            and (workdirs / configs[r].name / 'config.json').is_file()}
    pending = [(i, r) for i, r in todo if args.force or r not in done]
    for i, r in todo:
      if (i, r) not in pending:
        status[configs[r].name] = 'skipped (results JSON and run directory exist; --force reruns it)'
    if not pending:
      continue
    # One vocabulary and one tokenization per task (and per data settings), shared by its rows.
    first = configs[pending[0][1]]
    shared_dir = workdirs / f'data_{task}_{source}'
    progress.row(pending[0][0], f'{task} data')
    progress.stage(f'vocabulary + tokenized {source} data in {shared_dir}')
    train_data = prepare_task(task, first, shared_dir, log)
    groups = eval_groups(task, source, data_dir)
    eval_data = {g.key: _load_eval_data(task, first, g, train_data, shared_dir, log) for g in groups}
    for i, r in pending:
      c = configs[r]
      c.data.vocab_path = str(train_data.tokenizer.model_path)
      progress.row(i, c.name)
      try:
        result = run_row(c, workdirs / c.name, train_data, eval_data, groups, progress, log)
      except Exception as e:  # keep going: one broken row should not cost the other rows' hours
        status[c.name] = f'failed: {type(e).__name__}: {e}'
        log(f'reproduce: {c.name} FAILED: {type(e).__name__}: {e}')
        if args.fail_fast:
          raise
        continue
      result['provenance'] = provenance(argv, preset.name)
      if is_main:
        _write_json(results / 'rows' / f'{c.name}.json', result)
      status[c.name] = 'done'
      progress.stage(f"done in {result['wall_seconds']['total']:.0f}s")

  bench_status = 'skipped (--skip-bench)'
  if not args.skip_bench and is_main:
    progress.row(len(rows), 'bench')
    progress.stage(f'speed benchmark at size {preset.bench_size!r}')
    try:
      bench_status = run_bench(preset, results / 'bench.json', argv, log)
    except Exception as e:
      bench_status = f'failed: {type(e).__name__}: {e}'
    log(f'reproduce: bench {bench_status}')

  wall = time.time() - start
  if is_main:
    from mqa_repro import tables
    _write_json(results / 'run.json', {'preset': preset.name, 'data': source, 'wall_seconds': round(wall, 1),
                                       'rows': status, 'bench': bench_status,
                                       'provenance': provenance(argv, preset.name)})
    written = tables.write_tables(results, log=log)
    log(f"reproduce: wrote {', '.join(str(p) for p in written)}")
  failed = [n for n, s in status.items() if s.startswith('failed')]
  log(f'reproduce: {preset.name} finished in {wall / 60:.1f} min; {len(status) - len(failed)} rows ok'
      + (f', FAILED: {", ".join(failed)}' if failed else ''))
  return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  p = argparse.ArgumentParser(prog='mqa-repro reproduce', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--preset', required=True, choices=sorted(PRESETS))
  p.add_argument('--rows', help='comma-separated rows, e.g. wmt_mha,lm_mqa; wmt / lm = that table\'s '
                 'paper rows; all = also the grouped-query rows (default: every paper row)')
  p.add_argument('--steps', type=int, default=0, help='training steps per row (default: the preset\'s)')
  p.add_argument('--eval-sentences', type=int, default=None,
                 help='first N sentences of each eval split (0 = all; default: the preset\'s)')
  p.add_argument('--data', choices=('offline', 'text', 'tfds', 'auto'), default=None,
                 help="training text: the offline corpus, small real files under $MQA_REPRO_DATA (text), "
                      "TensorFlow Datasets' wmt14 / lm1b (tfds), or tfds when reachable (auto)")
  p.add_argument('--results', default=str(REPO_ROOT / 'results'), help='results root (default: results/)')
  p.add_argument('--workdirs', default=str(REPO_ROOT / 'workdirs'),
                 help='run directories root: checkpoints, vocabularies, hypotheses (default: workdirs/)')
  p.add_argument('--skip-bench', action='store_true', help='do not run the speed benchmark')
  p.add_argument('--force', action='store_true', help='rerun rows whose results JSON exists (training '
                 'still resumes from the row\'s checkpoints; delete its workdir to retrain)')
  p.add_argument('--fail-fast', action='store_true', help='stop at the first failing row')
  args, rest = p.parse_known_args(argv)
  for flag, value in (('--steps', args.steps), ('--eval-sentences', args.eval_sentences)):
    if value is not None and value < 0:
      p.error(f'{flag} must be >= 0, got {value}')
  bad = [a for a in rest if not a.startswith('--config.')]
  if bad:
    p.error(f'unrecognized arguments: {" ".join(bad)} (config overrides look like '
            f'--config.train.learning_rate=0.02; they apply to every row)')
  from mqa_repro import sharding
  sharding.maybe_initialize_distributed()
  try:
    return reproduce(args, rest, argv)
  except ValueError as e:
    print(f'mqa-repro reproduce: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
