"""Sizing runs for the scaled reproduction (issue 14): learning curves and step / decode times.

Trains one multi-head row at the 'gpu' size on the reproduction's training text and evaluates ln(PPL)
on two held-out sets every --eval-every steps (WMT: offline dev + newstest2013; LM: offline dev + lm1b
heldout 10+11), so the preset's step count can be read off the curve. The vocabulary and tokenized
splits come from --shared (built once on the CPU with --prepare and carried to the GPU machine).

    python scripts/h200_sizing.py --task translate --prepare --shared S      # CPU, once per task
    python scripts/h200_sizing.py --task translate --shared S --steps 5000 --out OUT
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import ml_collections

from mqa_repro import config as cfg

NEWS_TRAIN = ','.join(f'wmt14_en_de/extra_newstest/{n}' for n in (
    'newssyscomb2009', 'newstest2008', 'newstest2009', 'newstest2010', 'newstest2011', 'newstest2012',
    'newstest2015', 'newstest2016', 'newstest2017'))
EXTRA_ENGLISH = ','.join(f'offline_corpus/english/{n}.txt' for n in (
    'shakespeare_modern', 'bible_kjv', 'bible_web'))


def data_configs(task: str, english_dir: str, extra_english: bool, row: str = 'mha') -> tuple:
  """(training data config, evaluation data config) at the gpu size."""
  c = cfg.row_config(task, row, 'gpu')
  d = c.data
  d.source = 'text'
  if task == 'translate':
    d.train_files = 'offline_corpus/en_de/train,' + NEWS_TRAIN
    d.dev_files, d.test_files = 'offline_corpus/en_de/dev', 'offline_corpus/en_de/test'
    other = dict(dev_files='wmt14_en_de/newstest2013', test_files='wmt14_en_de/newstest2014')
  else:
    d.train_files = f'{english_dir}/train.txt' + (',' + EXTRA_ENGLISH if extra_english else '')
    d.dev_files, d.test_files = f'{english_dir}/dev.txt', f'{english_dir}/test.txt'
    other = dict(dev_files='lm1b/news.en.heldout-00010+00011-of-00050.txt', test_files='')
  e = ml_collections.ConfigDict(d.to_dict())
  e.update(train_files='', **other)
  return c, e


def main(argv):
  p = argparse.ArgumentParser()
  p.add_argument('--task', choices=('translate', 'lm'), required=True)
  p.add_argument('--shared', required=True, help='vocabulary + token caches directory')
  p.add_argument('--english', default='', help='offline corpus english/ dir (LM)')
  p.add_argument('--extra-english', action='store_true')
  p.add_argument('--row', default='mha')
  p.add_argument('--prepare', action='store_true', help='build vocabulary + caches only')
  p.add_argument('--steps', type=int, default=5000)
  p.add_argument('--eval-every', type=int, default=250)
  p.add_argument('--workdir', default='/tmp/sizing')
  p.add_argument('--out', default='')
  p.add_argument('--decode-timing', action='store_true')
  p.add_argument('--set', action='append', default=[], help='config override key=value')
  args = p.parse_args(argv)
  from mqa_repro.data.pipeline import load_task_data
  c, e = data_configs(args.task, args.english, args.extra_english, args.row)
  shared = Path(args.shared)
  data = load_task_data(args.task, c.data, shared)
  c.data.vocab_path = e.vocab_path = str(data.tokenizer.model_path)
  other = load_task_data(args.task, e, shared)
  if args.prepare:
    data.train_stream()
    for d in (data, other):
      list(d.eval_batches('dev'))
      if args.task == 'translate':
        list(d.eval_batches('test'))
    ex, keep = data._train
    print(json.dumps({'train_examples': len(ex), 'kept': len(keep),
                      'target_tokens': int(ex.targets.lengths[keep].sum()),
                      'rows_per_epoch': data.train_stream().rows_in_epoch(0)}))
    return 0

  import jax
  from mqa_repro.training import trainer as train
  c.train.num_train_steps = args.steps
  c.train.eval_every = args.eval_every
  c.train.checkpoint_every = args.steps
  c.train.log_every = 50
  c.train.progress = False
  c.train.tensorboard = False
  c.train.keep_checkpoints = 1
  cfg.apply_overrides(c, args.set)
  other_name = 'newstest2013' if args.task == 'translate' else 'lm1b'

  class Sizing(train.Trainer):
    def evaluate(self, params, split='dev'):
      own = super().evaluate(params, split)
      mine, self.data = self.data, other
      try:
        more = super().evaluate(params, 'dev')
      finally:
        self.data = mine
      return {**own, **{k.replace('eval_', f'eval_{other_name}_'): v for k, v in more.items()}}

  workdir = Path(args.workdir)
  t0 = time.time()
  trainer = Sizing(c, workdir, data=data)
  summary = trainer.train_and_evaluate()
  result = {'task': args.task, 'config': c.to_dict(), 'train_seconds': time.time() - t0,
            'device': jax.devices()[0].device_kind, 'jax': jax.__version__,
            'commit': os.environ.get('MQA_REPRO_COMMIT', ''), 'summary': summary,
            'curve': [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]}
  if args.decode_timing and args.task == 'translate':
    from mqa_repro.training import checkpoint
    from mqa_repro.decoding import text
    config, params, tok = checkpoint.load_for_inference(workdir, log=lambda m: None)
    sources, refs = other.eval_texts('test')
    from mqa_repro.evaluation.bleu import bleu
    timing = []
    for batch in (256, 1024):
      for rep in range(2):
        t = time.time()
        hyps, stats = text.decode_lines(config, params, tok, sources, beam_size=1,
                                        batch_size=batch, log=lambda m: None)
        timing.append({'batch': batch, 'rep': rep, 'seconds': time.time() - t,
                       'bleu_intl': bleu(hyps, refs)['intl']['score']})
        print(json.dumps(timing[-1]), flush=True)
    result['decode_timing'] = timing
  if args.out:
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
  print(json.dumps({k: v for k, v in result.items() if k not in ('config', 'curve')}, default=str))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
