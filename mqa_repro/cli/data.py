"""``mqa-repro data ...``: prepare data separately from training, and measure the input pipeline.

  offline-corpus --out DIR [--force] [--seed N] [--dev-size N] [--test-size N] [--sources A,B]
                                          build the registry-derived en-de + English corpus
  vocab   [--config FILE | --task T] [data flags] [--config.KEY=VALUE ...] --workdir DIR
                                          train (or reuse) the vocabulary and tokenize every split into
                                          the workdir cache, so training starts without that work
  bench   --task translate|lm --source offline|text|tfds [--steps N] [--out FILE.json]
                                          non-pad tokens per second produced by train_batches

Data flags mirror the ``data`` config fields (--train-files, --vocab-size, --max-length, ...). With
``--config FILE[:arg]`` the experiment config is loaded first; ``--config.KEY=VALUE`` overrides apply
to it (or, with ``--task`` alone, to the data defaults: ``--config.data.vocab_size=8000``), and
explicitly given data flags override both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Sequence

from mqa_repro import tasks
from mqa_repro.cli.common import Parser, stderr

# flag -> type, for the data config field of the same name
_DATA_FLAGS = {
    'source': str, 'data_dir': str, 'train_files': str, 'dev_files': str, 'test_files': str,
    'tfds_name': str, 'tfds_data_dir': str, 'vocab_size': int, 'vocab_path': str,
    'spm_max_sentences': int, 'max_length': int, 'batch_size': int, 'eval_batch_size': int, 'seed': int,
    'max_train_examples': int, 'max_eval_examples': int,
}


def _add_data_flags(p: argparse.ArgumentParser) -> None:
  p.add_argument('--config', help='experiment config file[:arg] (defaults come from it)')
  p.add_argument('--task', choices=sorted(tasks.TASKS))
  for name, typ in _DATA_FLAGS.items():
    p.add_argument('--' + name.replace('_', '-'), type=typ, default=None)
  p.add_argument('--no-pack', action='store_true', help='one example per row instead of packing')


def _data_config(args: argparse.Namespace, overrides: Sequence[str]):
  """(task, data config): the config file's or the task's defaults, the overrides, the flags."""
  import ml_collections

  from mqa_repro import config as cfg
  from mqa_repro.data import pipeline
  if args.config:
    c = cfg.load_config(args.config, overrides)
    if args.task and args.task != c.task:
      raise ValueError(f"--task {args.task} contradicts the config's task {c.task!r}")
  else:
    if not args.task:
      raise ValueError('give --task or --config')
    c = ml_collections.ConfigDict({'task': args.task, 'data': pipeline.default_data_config(args.task)})
    cfg.apply_overrides(c, overrides)
  for name in _DATA_FLAGS:
    value = getattr(args, name)
    if value is not None:
      c.data[name] = value
  if args.no_pack:
    c.data.pack = False
  return c.task, c.data


def _offline_corpus(args: argparse.Namespace, overrides: Sequence[str]) -> int:
  import importlib
  # Imported by name when used, so that the other subcommands never load the builder (and tests can
  # stand in for it through sys.modules).
  corpus = importlib.import_module('mqa_repro.corpus')
  sources = None if args.sources is None else [s for s in args.sources.split(',') if s]
  manifest = corpus.build_offline_corpus(args.out, seed=args.seed, dev_size=args.dev_size,
                                         test_size=args.test_size, sources=sources, force=args.force,
                                         log=print)
  print(json.dumps(manifest, indent=1, default=str))
  return 0


def _vocab(args: argparse.Namespace, overrides: Sequence[str]) -> int:
  from mqa_repro.data import pipeline
  task, data = _data_config(args, overrides)
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


def _bench(args: argparse.Namespace, overrides: Sequence[str]) -> int:
  from mqa_repro import provenance
  from mqa_repro.data import pipeline, throughput
  from mqa_repro.report import records
  task, data = _data_config(args, overrides)
  workdir = args.workdir or os.path.join(tempfile.gettempdir(), f'mqa_repro_bench_{task}_{data.source}')
  result = throughput.measure(pipeline.load_task_data(task, data, workdir), args.steps,
                              args.start_step)
  result.update(workdir=str(workdir),
                provenance=provenance.collect('mqa-repro data', args.argv, devices=False))
  print(json.dumps(result, indent=1))
  if args.out:
    records.write_json(args.out, result)
  return 0


def build_parser() -> Parser:
  parser = Parser('mqa-repro data', __doc__,
                  overrides='the --config file, or with --task alone the data defaults')
  sub = parser.add_subparsers(dest='command', required=True, parser_class=argparse.ArgumentParser)

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
  _add_data_flags(p)
  p.add_argument('--workdir', required=True)
  p.set_defaults(fn=_vocab)

  p = sub.add_parser('bench', help='input-pipeline throughput (non-pad tokens/s from train_batches)')
  _add_data_flags(p)
  p.add_argument('--workdir', default='', help='vocab + token cache (default: a fixed temp dir)')
  p.add_argument('--steps', type=int, default=200)
  p.add_argument('--start-step', type=int, default=0)
  p.add_argument('--out', default='', help='also write the JSON result here')
  p.set_defaults(fn=_bench)
  return parser


def main(argv: Sequence[str]) -> int:
  argv = list(argv)
  parser = build_parser()
  if '--override' in argv:
    parser.error('--override KEY=VALUE is now --config.KEY=VALUE (the one override syntax)')
  args, overrides = parser.parse(argv)
  args.argv = argv
  try:
    return args.fn(args, overrides)
  except (ValueError, FileNotFoundError, RuntimeError, ImportError) as e:
    # Bad data, missing files, failed downloads: the message says what to fix; no traceback.
    stderr(f'error: {e}')
    return 1


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
