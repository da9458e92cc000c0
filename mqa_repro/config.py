"""Experiment configuration: the paper's table rows as data, sizes, and the equal-parameter rule.

Every experiment is an ``ml_collections.ConfigDict`` with five groups:

  model   architecture (attention variant = num_heads / num_kv_heads / qk_dim / v_dim / window)
  data    where text comes from, vocabulary, packing, batch
  train   optimizer recipe, schedule, logging, checkpoints
  mesh    device mesh shape and the logical -> mesh axis rules
  decode  greedy / beam search settings

The files under ``configs/`` are one per table row and only call :func:`row_config`; everything a row
shares lives here, so a reader sees the whole recipe in one place. Every row widens ``d_ff`` until its
parameter count equals its table's baseline (the paper's rule); ``costs.equal_param_d_ff`` derives it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
from pathlib import Path
from typing import Any, Sequence

import ml_collections

from mqa_repro import costs, tasks
from mqa_repro.nn.decode_impl import IMPLS as ATTENTION_IMPLS
from mqa_repro.nn.attention import TRAIN_IMPLS as TRAIN_ATTENTION_IMPLS
DTYPES = ('float32', 'bfloat16', 'float16')
OPTIMIZERS = ('adafactor', 'adamw')
# config.train.prng_impl -> JAX's name for the implementation (jax.random.key(seed, impl=...)).
PRNG_IMPLS = {'rbg': 'rbg', 'threefry': 'threefry2x32'}

# --------------------------------------------------------------------------------------------------
# Rows of the paper's Tables 1 and 3 (plus grouped-query rows), as data.


@dataclasses.dataclass(frozen=True)
class Row:
  """One attention variant. ``head_dim_ratio`` scales the size's baseline head dim (128 at paper size)."""
  name: str
  label: str              # as the paper's table writes it
  num_heads: int          # h
  num_kv_heads: int       # g (1 = multi-query, h = multi-head)
  head_dim_ratio: float   # d_k = d_v = ratio * size.head_dim
  local: bool = False     # decoder self-attention sees a window of `size.window` positions


WMT_ROWS = (
    Row('mha', 'multi-head', 8, 8, 1.0),
    Row('mqa', 'multi-query', 8, 1, 1.0),
    Row('mha_local', 'multi-head local', 8, 8, 1.0, local=True),
    Row('mqa_local', 'multi-query local', 8, 1, 1.0, local=True),
    Row('h1_dk128', 'multi-head', 1, 1, 1.0),
    Row('h2_dk64', 'multi-head', 2, 2, 0.5),
    Row('h4_dk32', 'multi-head', 4, 4, 0.25),
    Row('h8_dk16', 'multi-head', 8, 8, 0.125),
    Row('gqa2', 'grouped-query g=2', 8, 2, 1.0),
    Row('gqa4', 'grouped-query g=4', 8, 4, 1.0),
)
# The LM table has no local rows (the paper ran local attention on WMT only).
LM_ROWS = tuple(r for r in WMT_ROWS if not r.local)
ROWS = {'translate': {r.name: r for r in WMT_ROWS}, 'lm': {r.name: r for r in LM_ROWS}}
# The rows that appear in the paper (the GQA rows are our addition from Ainslie et al. 2023).
PAPER_ROWS = {'translate': [r.name for r in WMT_ROWS[:8]], 'lm': [r.name for r in LM_ROWS[:6]]}


@dataclasses.dataclass(frozen=True)
class Size:
  """Dimensions of one scale. ``d_ff`` is the BASELINE (multi-head, h=8) width; rows widen it."""
  d_model: int
  head_dim: int            # baseline d_k = d_v
  d_ff_translate: int
  d_ff_lm: int
  encoder_layers: int
  decoder_layers: int
  vocab_translate: int     # sentencepiece vocabulary; the model pads it to a multiple of 128
  vocab_lm: int
  max_length: int          # packed row length and learned-position table size
  batch_translate: int     # packed rows per step (global)
  batch_lm: int
  window: int              # local-attention window
  steps_translate: int
  steps_lm: int
  warmup_steps: int
  decay_steps_translate: int
  decay_steps_lm: int
  eval_every: int
  checkpoint_every: int

  def of(self, field: str, task: str):
    """The task's value of a per-task field: ``size.of('steps', 'lm')``."""
    return getattr(self, f'{field}_{task}')


SIZES = {
    # The paper's configurations (its section 4): WMT 100k steps of 128 rows, LM 136k steps of 256 rows
    # (its code's 256 x 256 tokens). Vocab sizes fit its parameter counts: tensor2tensor's wmt32k
    # (33,708 entries) and lm1b32k (32,711) vocabularies; the paper does not state them.
    'paper': Size(d_model=1024, head_dim=128, d_ff_translate=4096, d_ff_lm=8192, encoder_layers=6,
                  decoder_layers=6, vocab_translate=33708, vocab_lm=32711, max_length=256,
                  batch_translate=128, batch_lm=256, window=32, steps_translate=100_000,
                  steps_lm=136_000, warmup_steps=10_000, decay_steps_translate=20_000,
                  decay_steps_lm=13_600, eval_every=5000, checkpoint_every=5000),
    # The paper's depth at d_model 512 on one GPU (the `gpu` preset sets its steps and recipe).
    'gpu': Size(d_model=512, head_dim=64, d_ff_translate=2048, d_ff_lm=4096, encoder_layers=6,
                decoder_layers=6, vocab_translate=16000, vocab_lm=16000, max_length=256,
                batch_translate=128, batch_lm=128, window=32, steps_translate=3500, steps_lm=3000,
                warmup_steps=1000, decay_steps_translate=1200, decay_steps_lm=1200, eval_every=500,
                checkpoint_every=1000),
    # CPU twins for tests and the `smoke` preset: same row structure at toy dimensions.
    'tiny': Size(d_model=64, head_dim=8, d_ff_translate=256, d_ff_lm=512, encoder_layers=2,
                 decoder_layers=2, vocab_translate=1000, vocab_lm=1000, max_length=64,
                 batch_translate=16, batch_lm=16, window=8, steps_translate=200, steps_lm=200,
                 warmup_steps=50, decay_steps_translate=50, decay_steps_lm=50, eval_every=100,
                 checkpoint_every=100),
}

# Logical axis -> mesh axis. Batch is split over data and fsdp; weights are fully sharded over fsdp
# along `embed` and tensor-parallel over `model` along heads / mlp / vocab. `kv_heads` maps to `model`
# only when the kv heads divide it; otherwise training/sharding.py replicates them.
DEFAULT_RULES = (
    ('batch', ('data', 'fsdp')),
    ('length', None),
    ('embed', 'fsdp'),
    ('heads', 'model'),
    ('kv_heads', 'model'),
    ('qk_dim', None),
    ('v_dim', None),
    ('mlp', 'model'),
    ('vocab', 'model'),
    ('positions', None),
    ('norm', None),
    ('cache_length', None),
)


def pad_vocab(n: int, multiple: int = 128) -> int:
  """Vocabulary padded so the embedding and softmax shard and tile evenly (the paper's configs do this)."""
  return -(-n // multiple) * multiple


# --------------------------------------------------------------------------------------------------
# Building configs.


def _model_config(task: str, size: Size, row: Row, widen: bool = True) -> ml_collections.ConfigDict:
  spec = tasks.get(task)
  m = ml_collections.ConfigDict()
  m.vocab_size = pad_vocab(size.of('vocab', task))
  m.d_model = size.d_model                          # d
  m.num_heads = row.num_heads                       # h: query heads
  m.num_kv_heads = row.num_kv_heads                 # g: key/value heads (1 = multi-query)
  m.qk_dim = int(size.head_dim * row.head_dim_ratio)  # d_k
  m.v_dim = int(size.head_dim * row.head_dim_ratio)   # d_v
  m.window = size.window if row.local else None     # decoder self-attention window; None = global
  m.encoder_layers = size.encoder_layers if spec.encoder else 0
  m.decoder_layers = size.decoder_layers
  m.max_length = size.max_length                    # learned position table
  m.share_embeddings = spec.shared_embeddings      # one table for encoder, decoder and softmax
  m.dropout_rate = spec.dropout[0]                  # residual / embedding dropout
  m.attention_dropout_rate = spec.dropout[1]        # on attention probabilities
  m.relu_dropout_rate = spec.dropout[2]             # after the FFN's ReLU
  m.norm_eps = 1e-6
  m.dtype = 'bfloat16'                              # activations; 'float32' for exact tests
  m.param_dtype = 'float32'
  m.attention_impl = 'xla'  # decode steps: 'xla' einsums (the reference) | 'pallas' | 'pallas_all'
  # training / scoring attention: 'xla' einsums (the reference) | 'pallas' (fused, in-kernel dropout)
  m.train_attention_impl = 'xla'
  # Baseline d_ff first, then widen this row to the parameter count of the table's multi-head row.
  m.d_ff = size.of('d_ff', task)
  if widen:
    baseline = _model_config(task, size, ROWS[task]['mha'], widen=False)
    m.d_ff = costs.equal_param_d_ff(m, task, costs.param_count(baseline, task))
  return m


def split_row(name: str) -> tuple[str, str]:
  """A row as the command line names it ('wmt_mqa', 'lm_gqa2') -> (task, row), or a ValueError
  listing every row."""
  prefix, _, row = name.partition('_')
  task = tasks.BY_PREFIX.get(prefix)
  if task is None or row not in ROWS[task.name]:
    known = [f'{t.prefix}_{r}' for t in tasks.TASKS.values() for r in ROWS[t.name]]
    raise ValueError(f'unknown row {name!r}; rows are {", ".join(known)}')
  return task.name, row


def row_config(task: str, row_name: str, size: str = 'paper') -> ml_collections.ConfigDict:
  """The full config of one table row at one size ('paper', 'gpu' or 'tiny')."""
  spec = tasks.get(task)
  if row_name not in ROWS[task]:
    raise ValueError(f"row must be one of {sorted(ROWS[task])} for task {task!r}, got {row_name!r}")
  if size not in SIZES:
    raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r} (configs take it as "
                     f"'configs/<file>.py:<size>')")
  s, row = SIZES[size], ROWS[task][row_name]
  c = ml_collections.ConfigDict()
  c.name = f'{spec.prefix}_{row_name}' + ('' if size == 'paper' else f'_{size}')
  c.task = task
  c.row = row_name
  c.label = row.label
  c.size = size
  c.model = _model_config(task, s, row)

  d = c.data = ml_collections.ConfigDict()
  d.source = 'offline'        # 'offline' (built from package registries) | 'text' | 'tfds'
  d.data_dir = ''             # offline corpus dir; '' = $MQA_REPRO_CACHE or ~/.cache/mqa_repro/...
  d.train_files = ''          # text source: comma-separated PREFIX (PREFIX.en/.de) or .tsv / .txt
  d.extra_train_files = ''    # any source: more training text, read after the source's own
  d.dev_files = ''
  d.test_files = ''
  d.tfds_name = spec.tfds_name
  d.tfds_data_dir = ''
  d.vocab_size = s.of('vocab', task)
  d.vocab_path = ''           # '' = train a SentencePiece model into the workdir
  d.spm_max_sentences = 1_000_000
  d.max_length = s.max_length  # packed row length (input and target side each)
  d.pack = True
  d.batch_size = s.of('batch', task)  # packed rows per step, global across hosts
  d.eval_batch_size = d.batch_size
  d.seed = 0
  d.max_train_examples = 0     # 0 = all
  d.max_eval_examples = 0
  d.dev_split = 'dev'
  d.test_split = 'test'

  t = c.train = ml_collections.ConfigDict()
  t.num_train_steps = s.of('steps', task)
  t.optimizer = 'adafactor'    # the paper's: beta1 0, decay exponent 0.8, clipping 1.0, factored
  t.learning_rate = 0.01       # lr = learning_rate * rsqrt(max(step, warmup_steps)) ...
  t.warmup_steps = s.warmup_steps
  t.decay_steps = s.of('decay_steps', task)  # ... linearly to 0
  t.adafactor_decay_rate = 0.8
  t.adafactor_clipping = 1.0
  t.adafactor_factored = True
  t.adafactor_param_scale = True
  t.grad_clip_norm = 0.0       # 0 = none (the paper uses none)
  t.label_smoothing = spec.label_smoothing
  t.z_loss = 1e-4
  t.seed = 0
  t.prng_impl = 'rbg'          # dropout RNG: 'rbg' (XLA RngBitGenerator, fast on GPU/TPU) or 'threefry'
  t.log_every = 50
  t.eval_every = s.eval_every
  t.eval_steps = 0             # 0 = the whole dev set
  t.checkpoint_every = s.checkpoint_every
  t.keep_checkpoints = 3
  t.async_checkpoint = True
  t.tensorboard = True         # workdir/tb: scalars, hparams, dev samples (tensorboardX, optional)
  # At eval steps, with TensorBoard on: greedy BLEU (tok intl) of the first N dev sentences
  # (translation; scalar eval/dev_sample_bleu), and the first M dev sentences decoded as text
  # (training/samples.py). A progress signal, not the paper's BLEU. 0 turns either off.
  t.tb_bleu_sentences = 32
  t.tb_samples = 4
  t.progress = True
  t.peak_tflops = 0.0          # per-device peak for the MFU estimate; 0 = look up the device kind
  t.inject_nan_at_step = -1    # fault injection for tests of the NaN guard; -1 = off

  msh = c.mesh = ml_collections.ConfigDict()
  msh.data = -1                # -1 = all devices not used by the other axes
  msh.fsdp = 1
  msh.model = 1
  msh.rules = DEFAULT_RULES

  dec = c.decode = ml_collections.ConfigDict()
  dec.beam_size = 4
  dec.alpha = 0.6              # GNMT length penalty ((5 + len) / 6) ** alpha
  dec.max_len_a = 1.5          # max decode length = a * source length + b
  dec.max_len_b = 10
  dec.batch_size = 64
  # What translate_batch / continue_batch compute in: 'float32' (float32 matmuls, no TF32 or bf16
  # passes) keeps the hypotheses from depending on --batch-size; '' = model.dtype (bfloat16: faster,
  # but a hypothesis can change with the batch). decoding/batch.py, "Determinism".
  dec.dtype = 'float32'
  return c


# --------------------------------------------------------------------------------------------------
# Validation: fail on the config field, before anything compiles.


def _number(c: ml_collections.ConfigDict, path: str, *, integer: bool = False, low: float | None = None,
            low_open: bool = False, high: float | None = None, high_open: bool = False,
            meaning: str = '') -> None:
  """Refuse config.<path> unless it is a number (an int when `integer`) inside the given bounds."""
  group, field = path.split('.')
  value = c[group][field]
  kinds = (int,) if integer else (int, float)
  ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
  ok = ok and (low is None or (value > low if low_open else value >= low))
  ok = ok and (high is None or (value < high if high_open else value <= high))
  if not ok:
    bounds = [f"{'>' if low_open else '>='} {low}" if low is not None else '',
              f"{'<' if high_open else '<='} {high}" if high is not None else '']
    what = 'an integer' if integer else 'a number'
    raise ValueError(f"config.{path} must be {what} {' and '.join(b for b in bounds if b)}"
                     f"{f' ({meaning})' if meaning else ''}, got {value!r}")


def _choice(c: ml_collections.ConfigDict, path: str, choices: Sequence[Any]) -> None:
  group, field = path.split('.')
  if c[group][field] not in choices:
    raise ValueError(f"config.{path} must be one of {tuple(choices)}, got {c[group][field]!r}")


def validate(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  m = c.model
  for field in ('vocab_size', 'd_model', 'd_ff', 'num_heads', 'num_kv_heads', 'qk_dim', 'v_dim',
                'decoder_layers', 'max_length'):
    value = m[field]
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"config.model.{field} must be a positive integer, got {value!r}")
  if not isinstance(m.encoder_layers, int) or m.encoder_layers < int(tasks.get(c.task).encoder):
    raise ValueError(f"config.model.encoder_layers must be >= 1 for translation (0 for lm), "
                     f"got {m.encoder_layers!r}")
  if m.num_heads % m.num_kv_heads:
    raise ValueError(f"config.model.num_heads ({m.num_heads}) must be divisible by "
                     f"config.model.num_kv_heads ({m.num_kv_heads}): each kv head serves a whole "
                     f"group of query heads")
  if m.window is not None and (not isinstance(m.window, int) or m.window < 1):
    raise ValueError(f"config.model.window must be None (global attention) or an integer >= 1, "
                     f"got {m.window!r}")
  for field in ('dropout_rate', 'attention_dropout_rate', 'relu_dropout_rate'):
    _number(c, f'model.{field}', low=0.0, high=1.0, high_open=True)
  _number(c, 'model.norm_eps', low=0.0, low_open=True)
  _choice(c, 'model.dtype', DTYPES)
  _choice(c, 'model.param_dtype', DTYPES)
  if m.get('train_attention_impl', 'xla') not in TRAIN_ATTENTION_IMPLS:   # absent in older runs' configs
    raise ValueError(f"config.model.train_attention_impl must be one of {TRAIN_ATTENTION_IMPLS}, "
                     f"got {m.train_attention_impl!r}")
  if m.get('attention_impl', 'xla') not in ATTENTION_IMPLS:
    raise ValueError(f"config.model.attention_impl must be one of {ATTENTION_IMPLS}, "
                     f"got {m.attention_impl!r}")

  for field in ('vocab_size', 'batch_size', 'eval_batch_size', 'spm_max_sentences'):
    _number(c, f'data.{field}', integer=True, low=1)
  _number(c, 'data.max_length', integer=True, low=2)
  for field in ('max_train_examples', 'max_eval_examples'):
    _number(c, f'data.{field}', integer=True, low=0, meaning='0 = all')
  _number(c, 'data.seed', integer=True, low=0)
  if c.data.max_length > m.max_length:
    raise ValueError(f"config.data.max_length ({c.data.max_length}) exceeds the position table "
                     f"config.model.max_length ({m.max_length})")

  _choice(c, 'train.optimizer', OPTIMIZERS)
  _number(c, 'train.num_train_steps', integer=True, low=1)
  _number(c, 'train.learning_rate', low=0.0, low_open=True)
  for field in ('warmup_steps', 'decay_steps'):
    _number(c, f'train.{field}', integer=True, low=0)
  _number(c, 'train.adafactor_decay_rate', low=0.0, low_open=True, high=1.0)
  _number(c, 'train.adafactor_clipping', low=0.0, meaning='0 = no update clipping')
  _number(c, 'train.grad_clip_norm', low=0.0, meaning='0 = no gradient clipping')
  _number(c, 'train.label_smoothing', low=0.0, high=1.0, high_open=True)
  _number(c, 'train.z_loss', low=0.0)
  _number(c, 'train.seed', integer=True, low=0)
  _choice(c, 'train.prng_impl', tuple(PRNG_IMPLS))
  for field in ('log_every', 'checkpoint_every', 'keep_checkpoints'):
    _number(c, f'train.{field}', integer=True, low=1)
  _number(c, 'train.eval_every', integer=True, low=0, meaning='0 = evaluate only at the end')
  _number(c, 'train.eval_steps', integer=True, low=0, meaning='0 = the whole dev set')
  for field in ('tb_bleu_sentences', 'tb_samples'):
    if field in c.train:     # (config.json files of older runs lack them: 0)
      _number(c, f'train.{field}', integer=True, low=0, meaning='0 = off')
  _number(c, 'train.peak_tflops', low=0.0, meaning='0 = look up the device kind')
  _number(c, 'train.inject_nan_at_step', integer=True, low=-1, meaning='-1 = off')

  for axis in ('data', 'fsdp', 'model'):
    if c.mesh[axis] != -1:
      _number(c, f'mesh.{axis}', integer=True, low=1, meaning='-1 = all remaining devices')

  _number(c, 'decode.beam_size', integer=True, low=1, meaning='1 = greedy')
  _number(c, 'decode.batch_size', integer=True, low=1)
  _number(c, 'decode.alpha', low=0.0)
  _number(c, 'decode.max_len_a', low=0.0)
  _number(c, 'decode.max_len_b', integer=True, low=0)
  if c.decode.max_len_a + c.decode.max_len_b < 1:
    raise ValueError(f"config.decode.max_len_a + max_len_b must be >= 1 (a one-token source may "
                     f"then decode one token), got {c.decode.max_len_a} + {c.decode.max_len_b}")
  _choice(c, 'decode.dtype', ('',) + DTYPES)
  return c


# --------------------------------------------------------------------------------------------------
# Loading config files and `--config.key=value` overrides.


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """Load ``path/to/file.py[:arg]`` (calls its ``get_config(arg)``) and apply ``key=value`` overrides."""
  path, _, arg = spec.partition(':')
  file = Path(path)
  if not file.is_file():
    here = Path(__file__).resolve().parent.parent / 'configs' / file.name
    hint = f" (did you mean {here}?)" if here.is_file() else ''
    raise FileNotFoundError(f"config file not found: {path}{hint}")
  module_spec = importlib.util.spec_from_file_location(f'_mqa_config_{file.stem}', file)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, 'get_config'):
    raise ValueError(f"config file {path} defines no get_config()")
  c = module.get_config(arg) if arg else module.get_config()
  apply_overrides(c, overrides)
  return validate(c)


def _parse_value(text: str, current: Any, key: str) -> Any:
  if current is None:  # an optional field (e.g. model.window): take a literal, else the string
    import ast
    try:
      return None if text.lower() == 'none' else ast.literal_eval(text)
    except (ValueError, SyntaxError):
      return text
  if isinstance(current, bool):
    if text.lower() in ('true', '1', 'yes'):
      return True
    if text.lower() in ('false', '0', 'no'):
      return False
    raise ValueError(f"--config.{key} expects true/false, got {text!r}")
  if isinstance(current, int):
    try:
      return int(text)
    except ValueError:
      raise ValueError(f"--config.{key} expects an integer, got {text!r}") from None
  if isinstance(current, float):
    try:
      return float(text)
    except ValueError:
      raise ValueError(f"--config.{key} expects a number, got {text!r}") from None
  if isinstance(current, (tuple, list)):
    import ast
    try:
      return type(current)(ast.literal_eval(text))
    except (ValueError, SyntaxError):
      raise ValueError(f"--config.{key} expects a Python literal list/tuple, got {text!r}") from None
  return text


def apply_overrides(c: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
  """``model.window=32`` style overrides; unknown keys fail with the closest known ones listed."""
  for item in overrides:
    key, sep, text = item.partition('=')
    key = key.removeprefix('--config.').removeprefix('config.')
    if not sep:
      raise ValueError(f"override {item!r} must look like --config.<key>=<value>")
    node, parts = c, key.split('.')
    for i, part in enumerate(parts):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        where = '.'.join(parts[:i]) or '<root>'
        known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        raise ValueError(f"unknown config key --config.{key}: {where} has no field {part!r}; "
                         f"known fields: {', '.join(known)}")
      if i < len(parts) - 1:
        node = node[part]
    node[parts[-1]] = _parse_value(text, node[parts[-1]], key)


def configs_dir() -> Path:
  """The repository's configs/ folder (also honours $MQA_REPRO_CONFIGS)."""
  env = os.environ.get('MQA_REPRO_CONFIGS')
  return Path(env) if env else Path(__file__).resolve().parent.parent / 'configs'


def config_file(task: str, row_name: str) -> Path:
  return configs_dir() / f'{tasks.get(task).prefix}_{row_name}.py'
