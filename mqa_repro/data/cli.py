"""``mqa-repro data ...``: prepare data separately from training, and measure the input pipeline.

  offline-corpus --out DIR [--force] [--seed N] [--dev-size N] [--test-size N] [--sources A,B]
                                          build the registry-derived en-de + English corpus
  vocab   [--config FILE | data flags] --workdir DIR
                                          train (or reuse) the vocabulary and tokenize every split into
                                          the workdir cache, so training starts without that work
  bench   --task translate|lm --source offline|text|tfds [--steps N] [--out FILE.json]
                                          non-pad tokens per second produced by train_batches

Data flags mirror the ``data`` config fields (--train-files, --vocab-size, --max-length, ...). With
``--config FILE[:arg]`` the experiment config is loaded first and explicitly given flags override it.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ml_collections
import numpy as np

from mqa_repro.data import pipeline

# flag -> (data config field, type)
_DATA_FLAGS = {
    'source': str, 'data_dir': str, 'train_files': str, 'dev_files': str, 'test_files': str,
    'tfds_name': str, 'tfds_data_dir': str, 'vocab_size': int, 'vocab_path': str,
    'spm_max_sentences': int, 'max_length': int, 'batch_size': int, 'eval_batch_size': int, 'seed': int,
    'max_train_examples': int, 'max_eval_examples': int,
}


def _add_data_flags(p: argparse.ArgumentParser, *, require_task: bool) -> None:
  p.add_argument('--config', help='experiment config file[:arg] (defaults come from it)')
  p.add_argument('--override', action='append', default=[], metavar='KEY=VALUE',
                 help='config override, e.g. data.vocab_size=8000 (with --config)')
  p.add_argument('--task', choices=pipeline.TASKS, required=require_task)
  for name, typ in _DATA_FLAGS.items():
    p.add_argument('--' + name.replace('_', '-'), type=typ, default=None)
  p.add_argument('--no-pack', action='store_true', help='one example per row instead of packing')


def _data_config(args: argparse.Namespace) -> tuple[str, ml_collections.ConfigDict]:
  if args.config:
    from mqa_repro import config as config_lib  # the experiment configs (lead's module)
    c = config_lib.load_config(args.config, args.override)
    task, data = c.task, c.data
    if args.task and args.task != task:
      raise SystemExit(f"--task {args.task} contradicts the config's task {task!r}")
  else:
    if not args.task:
      raise SystemExit('give --task or --config')
    task, data = args.task, pipeline.default_data_config(args.task)
  for name in _DATA_FLAGS:
    value = getattr(args, name)
    if value is not None:
      data[name] = value
  if args.no_pack:
    data.pack = False
  return task, data


def _offline_corpus(args: argparse.Namespace) -> int:
  # Imported by name when used, so that the other subcommands never load the builder (and tests can
  # stand in for it through sys.modules).
  corpus = importlib.import_module('mqa_repro.corpus')
  sources = None if args.sources is None else [s for s in args.sources.split(',') if s]
  manifest = corpus.build_offline_corpus(args.out, seed=args.seed, dev_size=args.dev_size,
                                         test_size=args.test_size, sources=sources, force=args.force,
                                         log=print)
  print(json.dumps(manifest, indent=1, default=str))
  return 0


def _vocab(args: argparse.Namespace) -> int:
  task, data = _data_config(args)
  td = pipeline.load_task_data(task, data, args.workdir)
  td.train_stream()  # tokenizes and caches the training split
  for split in ('dev', 'test'):
    try:
      sum(1 for _ in td.eval_batches(split))
      print(f"{split}: {len(td.eval_texts(split)[0])} sentences, {td.word_count(split)} words")
    except ValueError as e:  # e.g. no test files configured
      print(f"{split}: skipped ({e})")
  print(f"vocabulary: {td.tokenizer.model_path} ({td.tokenizer.vocab_size} pieces)")
  return 0


def _provenance(argv: list[str]) -> dict:
  try:
    commit = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent, check=False).stdout.strip()
  except OSError:
    commit = ''
  import sentencepiece
  return {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
          'host': platform.node(), 'cpu_count': os.cpu_count(), 'python': platform.python_version(),
          'numpy': np.__version__, 'sentencepiece': sentencepiece.__version__, 'git_commit': commit,
          'command': 'mqa-repro data ' + ' '.join(argv)}


def _bench(args: argparse.Namespace) -> int:
  task, data = _data_config(args)
  workdir = args.workdir or os.path.join(tempfile.gettempdir(), f'mqa_repro_bench_{task}_{data.source}')
  t0 = time.perf_counter()
  td = pipeline.load_task_data(task, data, workdir)
  stream = td.train_stream()  # tokenization (or cache load) happens here
  setup_s = time.perf_counter() - t0
  it = td.train_batches(start_step=args.start_step)
  t1 = time.perf_counter()
  next(it)  # first batch: packs the first epoch
  first_batch_s = time.perf_counter() - t1
  tokens = target_tokens = slots = 0
  t2 = time.perf_counter()
  for _ in range(args.steps):
    batch = next(it)
    for key in ('inputs', 'targets'):
      if key in batch:
        n = int(np.count_nonzero(batch[f'{key}_segmentation']))
        tokens += n
        slots += batch[key].size
        target_tokens += n if key == 'targets' else 0
  elapsed = time.perf_counter() - t2
  result = {
      'task': task, 'source': data.source, 'steps': args.steps, 'batch_size': data.batch_size,
      'max_length': data.max_length, 'pack': bool(data.pack), 'vocab_size': td.tokenizer.vocab_size,
      'train_examples_kept': int(stream.num_examples),
      'steps_per_epoch': stream.rows_in_epoch(0) / data.batch_size,
      'tokens_per_s': tokens / elapsed,              # non-pad, inputs + targets
      'target_tokens_per_s': target_tokens / elapsed,
      'steps_per_s': args.steps / elapsed,
      'fill': tokens / max(slots, 1),                # non-pad fraction of the batch arrays
      'setup_s': setup_s, 'first_batch_s': first_batch_s, 'workdir': str(workdir),
      **_provenance(args.argv),
  }
  print(json.dumps(result, indent=1))
  if args.out:
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + '\n')
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='mqa-repro data', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True)

  p = sub.add_parser('offline-corpus', help='build the offline en-de + English corpus')
  p.add_argument('--out', required=True, help='output directory (downloads are cached in OUT/cache)')
  p.add_argument('--force', action='store_true', help='rebuild even if MANIFEST.json is up to date')
  p.add_argument('--seed', type=int, default=0, help='seed of the train/dev/test split')
  p.add_argument('--dev-size', type=int, default=2000, help='pairs (and English lines) in dev')
  p.add_argument('--test-size', type=int, default=2000, help='pairs (and English lines) in test')
  p.add_argument('--sources', default=None, metavar='A,B,...',
                 help='comma-separated subset of the named sources (default: all; mqa_repro/corpus/sources.py)')
  p.set_defaults(fn=_offline_corpus)

  p = sub.add_parser('vocab', help='train the vocabulary and tokenize all splits into --workdir')
  _add_data_flags(p, require_task=False)
  p.add_argument('--workdir', required=True)
  p.set_defaults(fn=_vocab)

  p = sub.add_parser('bench', help='input-pipeline throughput (non-pad tokens/s from train_batches)')
  _add_data_flags(p, require_task=False)
  p.add_argument('--workdir', default='', help='vocab + token cache (default: a fixed temp dir)')
  p.add_argument('--steps', type=int, default=200)
  p.add_argument('--start-step', type=int, default=0)
  p.add_argument('--out', default='', help='also write the JSON result here')
  p.set_defaults(fn=_bench)
  return parser


def main(argv: list[str]) -> int:
  args = build_parser().parse_args(argv)
  args.argv = list(argv)
  try:
    return args.fn(args)
  except (ValueError, FileNotFoundError, RuntimeError, ImportError) as e:
    # Bad data, missing files, failed downloads: the message says what to fix; no traceback.
    print(f'error: {e}', file=sys.stderr)
    return 1


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
