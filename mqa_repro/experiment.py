"""The experiment as data: presets, the runs a preset trains (rows x seeds), evaluation sets, and the
paper's own numbers that every table sets ours beside.

A **preset** fixes a size (``config.SIZES``), the training text and step budget of each task, the
recipe changes it needs at that scale (stated, never silent), how many seeds each row gets, and what
is evaluated. A **run** is one (task, row, seed): its name is the row config's name, plus
``_seed<S>`` for seeds other than 0, and names its run directory and its results JSON.

Paths in a preset's data fields are relative to ``$MQA_REPRO_DATA`` (``../shared/data`` beside a
checkout), where the real evaluation text and the fixed copy of the offline corpus live.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from mqa_repro import config as cfg
from mqa_repro import tasks

# --------------------------------------------------------------------------------------------------
# Presets.

# Other years' WMT news test sets (never newstest2013/2014, the paper's dev and test): the only news
# text within reach, so newstest is not wholly out of domain for the gpu preset's models.
NEWS_TRAIN = tuple(f'wmt14_en_de/extra_newstest/{n}' for n in (
    'newssyscomb2009', 'newstest2008', 'newstest2009', 'newstest2010', 'newstest2011', 'newstest2012',
    'newstest2015', 'newstest2016', 'newstest2017'))
# Running English of the fixed offline corpus that the offline builder's English split does not hold
# (its Brown and nlp-corpus text is already there).
EXTRA_ENGLISH = tuple(f'offline_corpus/english/{n}.txt' for n in (
    'shakespeare_modern', 'bible_kjv', 'bible_web'))
# The paper's evaluation text under $MQA_REPRO_DATA.
NEWSTEST = {'dev_files': 'wmt14_en_de/newstest2013', 'test_files': 'wmt14_en_de/newstest2014'}
LM1B_DEV = 'lm1b/news.en.heldout-00010+00011-of-00050.txt'


@dataclasses.dataclass(frozen=True)
class TaskPlan:
  """What a preset trains one task on, and for how long."""
  source: str                          # 'offline' | 'text' | 'tfds' | 'auto' (tfds when reachable)
  files: tuple[tuple[str, str], ...] = ()   # config.data fields set for this source (paths under
                                            # $MQA_REPRO_DATA); comma-joined tuples
  steps: int = 0                       # 0 = the size's num_train_steps for the task
  overrides: tuple[str, ...] = ()      # config overrides for every row of the task, before the user's
  own_eval: str = ''                   # what the source's own dev/test are ('' = the paper's sets)


@dataclasses.dataclass(frozen=True)
class Preset:
  name: str
  size: str                    # config.SIZES key
  description: str
  tasks: dict                  # task -> TaskPlan
  max_train_examples: int = 0  # bounds vocabulary training and tokenization; 0 = all
  eval_sentences: int = 0      # first N sentences of every eval split; 0 = all
  decode_batch: int = 256      # sentences per greedy decode call (one compiled shape per call)
  beam_batch: int = 64         # sentences per beam decode call (x beam hypotheses)
  log_every: int = 100
  eval_every: int = 0          # in-training dev ln(PPL) (the eval curve); 0 = only after training
  tensorboard: bool = True
  bench_size: str = 'paper'    # bench.run_benchmark(size=...)
  bench_sweeps: bool = True
  seeds: tuple[tuple[str, int], ...] = ()   # row -> number of seeds (others: 1)
  needs_data_dir: bool = False # its training text is under $MQA_REPRO_DATA

  def plan(self, task: str) -> TaskPlan:
    return self.tasks[task]

  def seed_count(self, row: str) -> int:
    return dict(self.seeds).get(row, 1)


def _joined(*paths: str) -> str:
  return ','.join(paths)


PRESETS = {
    'smoke': Preset(
        'smoke', 'tiny', 'tiny CPU twins of every paper row; a pipeline check, not a quality claim',
        tasks={t: TaskPlan('offline', steps=300,
                           # In 300 steps the paper's step size 0.01 leaves a 0.3M-parameter model
                           # near unigram statistics (results/notes/presets.md).
                           overrides=('train.learning_rate=0.1',),
                           own_eval='offline corpus held-out dev / test (in-domain for our training data)')
               for t in tasks.TASKS},
        # The eval curve every 100 steps (3 points): on 2 CPU cores a dev ln(PPL) pass over 300
        # sentences costs ~0.4 s after a ~2-3 s compile, and TensorBoard's greedy 32-sentence BLEU
        # sample ~0.1 s after a ~2-3 s compile, against ~35-75 s of training per row.
        max_train_examples=60_000, eval_sentences=300, decode_batch=300, beam_batch=300, log_every=20,
        eval_every=100, tensorboard=True, bench_size='tiny', bench_sweeps=False),
    'gpu': Preset(
        'gpu', 'gpu',
        'the scaled reproduction: d_model 512 at the paper\'s depth on real text, every row within '
        '5 (WMT) / 3 (LM) minutes on one H200, 3 seeds of multi-head and multi-query',
        tasks={
            # Steps and peak learning rate read off the learning curves of results/h200/sizing*
            # (results/notes/presets.md): the most steps that fit the time budget with evaluation,
            # at the highest peak rate that stays stable.
            'translate': TaskPlan(
                'text', files=(('train_files', _joined('offline_corpus/en_de/train', *NEWS_TRAIN)),
                               ('dev_files', 'offline_corpus/en_de/dev'),
                               ('test_files', 'offline_corpus/en_de/test')),
                steps=3500, overrides=('train.learning_rate=0.03',),
                own_eval='offline corpus (the fixed copy under $MQA_REPRO_DATA) held-out dev / test: '
                         'in-domain'),
            # The paper's LM recipe has no dropout, which overfits this much smaller text; the WMT
            # recipe's dropout does not (results/notes/presets.md).
            'lm': TaskPlan(
                'offline', files=(('extra_train_files', _joined(*EXTRA_ENGLISH)),), steps=3000,
                overrides=('model.dropout_rate=0.2', 'model.attention_dropout_rate=0.1',
                           'model.relu_dropout_rate=0.1'),
                own_eval='offline corpus English held-out dev (Brown + nlp-corpus sentences)'),
        },
        decode_batch=1024, beam_batch=256, log_every=100, eval_every=500, tensorboard=True,
        bench_size='paper', bench_sweeps=True, seeds=(('mha', 3), ('mqa', 3)), needs_data_dir=True),
    'paper': Preset(
        'paper', 'paper', "the paper's exact configurations (TPU pod / GPU cluster scale)",
        tasks={t: TaskPlan('auto', own_eval='offline corpus held-out dev / test (used only when the '
                                            'tfds datasets are unreachable)')
               for t in tasks.TASKS},
        decode_batch=128, beam_batch=32, log_every=100, eval_every=0, tensorboard=True,
        bench_size='paper', bench_sweeps=True),
}

# --data text: small REAL files under $MQA_REPRO_DATA (tests and pipeline checks; far too little to
# train on). Their dev / test are the paper's own evaluation text.
TEXT_DATA = {
    'translate': {'train_files': 'wmt14_en_de/train_subsets/europarl_v7_first1000.raw', **NEWSTEST},
    'lm': {'train_files': 'lm1b/news.en.heldout-00012+00013-of-00050.txt', 'dev_files': LM1B_DEV,
           'test_files': 'lm1b/news.en.heldout-00000-of-00050.first100.txt'},
}


# --------------------------------------------------------------------------------------------------
# Runs: rows x seeds.


@dataclasses.dataclass(frozen=True)
class Run:
  task: str
  row: str
  seed: int = 0

  def name(self, size: str) -> str:
    base = cfg.row_config(self.task, self.row, size).name
    return base if self.seed == 0 else f'{base}_seed{self.seed}'


def parse_runs(spec: str | None, preset: Preset, seeds: int | None = None) -> list[Run]:
  """'wmt_mha,lm_mqa@2' -> runs. A row without '@' gets every seed the preset gives it (or `seeds`);
  'wmt' / 'lm' = that table's paper rows, 'all' = every row including grouped-query; None = all rows
  of both tables. 'ROW@S' is the one run of seed S."""
  items = [s.strip() for s in (spec or 'all').split(',') if s.strip()]
  out: list[Run] = []
  for item in items:
    item, at, seed_text = item.partition('@')
    if item == 'all':
      rows = [(t, r) for t in tasks.TASKS for r in cfg.ROWS[t]]
    elif item in tasks.BY_PREFIX:      # 'wmt' -> the paper rows of translate
      task = tasks.BY_PREFIX[item].name
      rows = [(task, r) for r in cfg.PAPER_ROWS[task]]
    else:
      try:
        rows = [cfg.split_row(item)]
      except ValueError as e:
        raise ValueError(f'{e} (or wmt, lm, all), optionally with @SEED') from None
    if at:
      if not seed_text.isdigit():
        raise ValueError(f'{item}@{seed_text}: the seed after @ must be a non-negative integer')
      out += [Run(t, r, int(seed_text)) for t, r in rows]
    else:
      out += [Run(t, r, s) for t, r in rows for s in range(seeds or preset.seed_count(r))]
  seen: set = set()
  return [r for r in out if not (r in seen or seen.add(r))]   # keep order, drop repeats


# --------------------------------------------------------------------------------------------------
# Evaluation sets.


@dataclasses.dataclass(frozen=True)
class EvalSplit:
  name: str                    # what the tables call it, e.g. 'newstest2014'
  split: str                   # the TaskData split: 'dev' | 'test'


@dataclasses.dataclass(frozen=True)
class EvalGroup:
  """One evaluation text (a dev and maybe a test split) and the data fields that read it."""
  key: str                     # 'offline' | 'newstest' | 'lm1b'
  description: str
  dev: EvalSplit
  test: EvalSplit | None
  data_overrides: tuple[tuple[str, str], ...] = ()   # config.data fields; () = the training data's

  def splits(self) -> list[tuple[str, EvalSplit]]:
    return [(role, s) for role, s in (('dev', self.dev), ('test', self.test)) if s is not None]


@dataclasses.dataclass(frozen=True)
class PaperEval:
  """The paper's evaluation text of a task, as files under $MQA_REPRO_DATA (or its tfds splits)."""
  key: str
  description: str                     # '{dev}' stands for the dev split's name
  dev: str                             # the dev split's name in tables
  test: str | None
  files: tuple[tuple[str, str], ...]   # config.data fields -> paths under $MQA_REPRO_DATA
  tfds_dev: str = ''                   # the dev split's name when the source is tfds ('' = dev)


PAPER_EVAL = {
    'translate': PaperEval('newstest', "WMT newstest2013 (dev) / newstest2014 (test): the paper's sets",
                           'newstest2013', 'newstest2014', tuple(NEWSTEST.items())),
    'lm': PaperEval('lm1b', "{dev}: real Billion-Word text, the paper's dev set", 'lm1b heldout 10+11',
                    None, (('dev_files', LM1B_DEV), ('test_files', '')), tfds_dev='lm1b heldout'),
}


def eval_groups(task: str, source: str, data_dir: Path | None, own_eval: str = '') -> list[EvalGroup]:
  """The eval sets of a task: the source's own splits first, then the paper's text under `data_dir`.

  `own_eval` describes the source's own dev/test; '' means they ARE the paper's sets (--data text,
  tfds), so no second group is added.
  """
  def under(rel: str) -> str:
    return str(data_dir / rel) if data_dir and rel else rel

  spec, pe = tasks.get(task), PAPER_EVAL[task]
  dev = pe.tfds_dev if source == 'tfds' and pe.tfds_dev else pe.dev
  paper = EvalGroup(pe.key, pe.description.format(dev=dev), EvalSplit(dev, 'dev'),
                    EvalSplit(pe.test, 'test') if pe.test else None,
                    (('source', 'text'), ('train_files', ''), ('extra_train_files', ''),
                     *((k, under(v)) for k, v in pe.files)))
  own = EvalGroup('offline', own_eval, EvalSplit('offline dev', 'dev'),
                  EvalSplit('offline test', 'test') if spec.test_split else None)
  if not own_eval:
    return [dataclasses.replace(paper, data_overrides=())]
  has_paper_text = data_dir is not None and data_dir.is_dir()
  return [own] + ([paper] if has_paper_text else [])


# --------------------------------------------------------------------------------------------------
# The paper's numbers (Shazeer 2019, Tables 1-3; None = not reported).

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
PAPER_TABLES = {1: PAPER_TABLE1, 3: PAPER_TABLE3}
PAPER_PARAMS = {'translate': '211M', 'lm': '192M'}
PAPER_TRAINING = {'translate': '100k steps × 128 × (256 + 256) tokens, WMT14 en-de, 32-core TPUv3',
                  'lm': '136k steps × 256 × 256 tokens, lm1b, 32-core TPUv3'}
PAPER_LEARNING_RATE = 0.01


def baseline_row(task: str) -> str:
  """The row every other row is compared with (bootstrap, differences): multi-head."""
  return 'mha'


def rows_in_table(task: str, names: Sequence[str]) -> list[str]:
  """The paper's rows first (its order), then ours."""
  paper = list(PAPER_TABLES[tasks.get(task).table])
  order = list(cfg.ROWS[task])
  return paper + sorted((n for n in set(names) if n not in paper),
                        key=lambda n: order.index(n) if n in order else len(order))
