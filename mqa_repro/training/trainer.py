"""Sharded training: the paper's optimizer recipe, evaluation, orbax checkpoints with exact resume.

    mqa-repro train --config configs/wmt_mqa.py[:tiny|gpu] --workdir DIR [--config.key=value ...]
    (mqa_repro/cli/train.py)

One code path for 1 CPU, 8 fake CPU devices, GPUs and multi-host TPU pods: parameters and optimizer
state are created directly sharded (``jax.eval_shape`` + ``jax.jit(out_shardings=...)``), the step is
jitted with in/out shardings and donates the old state, and each host feeds its rows of the batch.

Exact resume: the data order is a function of (seed, step) (data/packing.py), dropout keys are
``fold_in(seed, step)``, and the checkpoint stores step + parameters + optimizer state, so a run killed
and resumed ends bit-identical to one that never stopped (tests/test_train.py kills one with SIGKILL).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from mqa_repro import config as cfg
from mqa_repro import costs, paths, tasks
from mqa_repro.nn import transformer as mdl
from mqa_repro.training import checkpoint as ckpt
from mqa_repro.training import losses
from mqa_repro.training import sharding

Array = jax.Array
Log = Callable[[str], None]

# Dense bf16 peak FLOP/s per device, for the MFU estimate (vendor datasheets). CPU has none.
PEAK_FLOPS = costs.PEAK_BF16_FLOPS


class NonFiniteLoss(RuntimeError):
  pass


_tree_norm = getattr(getattr(optax, 'tree', None), 'norm', None) or optax.global_norm


# --------------------------------------------------------------------------------------------------
# The recipe: learning-rate schedule, Adafactor, loss.


def schedule_values(t: ml_collections.ConfigDict) -> np.ndarray:
  """The learning-rate schedule's numbers, float32 [5]: rate, warmup, 1 / warmup, total steps,
  1 / decay steps (0 without decay). The train step takes them as an argument, not as constants
  compiled in, so configs that differ only in rate or step counts share one compiled step. XLA
  turns a division by a constant into a multiplication by its float32 reciprocal; the schedule
  multiplies by the same reciprocals, so its rates are those a schedule with the numbers compiled
  in gives, bit for bit."""
  warmup = max(t.warmup_steps, 1)
  inv_decay = np.float32(1) / np.float32(t.decay_steps) if t.decay_steps > 0 else 0
  return np.array([t.learning_rate, warmup, np.float32(1) / np.float32(warmup), t.num_train_steps,
                   inv_decay], np.float32)


def learning_rate_schedule(t: ml_collections.ConfigDict, values: Any = None) -> optax.Schedule:
  """learning_rate · rsqrt(max(step, warmup) / warmup), then linear decay to 0 over the last
  ``decay_steps`` steps. With learning_rate 0.01 and warmup 10k this is tensor2tensor's
  ``rsqrt_decay*linear_decay`` = rsqrt(max(step, 10k)) · decay, the paper's schedule: 0.01 at its
  peak. `values`: ``schedule_values(t)``, or the same numbers traced (the train step's argument)."""
  values = schedule_values(t) if values is None else values
  decay = t.decay_steps > 0

  def schedule(step):
    base, warmup, inv_warmup, total, inv_decay = (values[i] for i in range(5))
    step = jnp.asarray(step, jnp.float32)
    rsqrt = base * jax.lax.rsqrt(jnp.maximum(step, warmup) * inv_warmup)
    if not decay:
      return rsqrt
    return rsqrt * jnp.clip((total - step) * inv_decay, 0.0, 1.0)
  return schedule


def make_optimizer(t: ml_collections.ConfigDict, schedule: Any = None) -> optax.GradientTransformation:
  """The optimizer of `t`; `schedule`: the schedule's numbers (``schedule_values``) if not `t`'s.
  Its state's structure does not depend on them."""
  learning_rate = learning_rate_schedule(t, schedule)
  if t.optimizer == 'adafactor':
    # The paper's: no momentum (beta1 = 0), second-moment decay exponent 0.8, update clipping 1.0,
    # factored second moments, step size relative to each parameter's scale.
    tx = optax.adafactor(learning_rate=learning_rate, decay_rate=t.adafactor_decay_rate,
                         clipping_threshold=t.adafactor_clipping or None, momentum=None,
                         multiply_by_parameter_scale=t.adafactor_param_scale,
                         factored=t.adafactor_factored)
  elif t.optimizer == 'adamw':
    tx = optax.adamw(learning_rate, b1=0.9, b2=0.98, weight_decay=0.0)
  else:
    raise ValueError(f"config.train.optimizer must be 'adafactor' or 'adamw', got {t.optimizer!r}")
  if t.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(t.grad_clip_norm), tx)
  return tx


# --------------------------------------------------------------------------------------------------
# Steps (pure functions; jitted with shardings by Trainer).


def make_train_step(model: mdl.Transformer, t: ml_collections.ConfigDict) -> Callable:
  """(state, batch, base_rng, schedule) -> (state, outputs); `schedule`: ``schedule_values(t)``."""
  def train_step(state: dict, batch: dict, base_rng: jax.Array,
                 schedule: Array) -> tuple[dict, dict]:
    tx = make_optimizer(t, schedule)
    rng = jax.random.fold_in(base_rng, state['step'])   # dropout keys depend only on (seed, step)

    def loss_fn(params):
      logits = model.apply({'params': params}, batch, deterministic=False, rngs={'dropout': rng})
      weights = losses.weights_of(batch['targets'])
      loss, sums = losses.training_loss(logits, batch['targets'], weights,
                                             label_smoothing=t.label_smoothing, z_loss=t.z_loss)
      return loss, sums

    (loss, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state['params'])
    if t.get('inject_nan_at_step', -1) >= 0:  # fault injection for the tests of the NaN guard
      loss = jnp.where(state['step'] == t.inject_nan_at_step, jnp.nan, loss)
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    new_state = {'step': state['step'] + 1, 'params': params, 'opt_state': opt_state}
    out = {'loss': loss, 'nll': sums['nll_sum'] / jnp.maximum(sums['weight_sum'], 1.0),
           'tokens': sums['weight_sum'], 'grad_norm': _tree_norm(grads)}
    return new_state, out
  return train_step


# What the divergence guard checks, in the order of make_finite_check's flags.
GUARDED = ('loss', 'gradient norm', 'updated parameters', 'optimizer state')


def make_finite_check() -> Callable:
  """(state, step outputs) -> bool [4]: are the loss, the gradient norm, every parameter and every
  optimizer-state entry finite (GUARDED). One jitted reduction, fetched as four flags: the loss
  alone is not enough, it is computed BEFORE the update, so a step whose update overflows reports
  a finite loss and hands on parameters that are all inf / NaN."""
  def all_finite(tree) -> Array:
    flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
             if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)

  def check(state: dict, out: dict) -> Array:
    return jnp.stack([jnp.isfinite(out['loss']), jnp.isfinite(out['grad_norm']),
                      all_finite(state['params']), all_finite(state['opt_state'])])
  return check


def divergence_message(step: int, finite: np.ndarray, loss: float, grad_norm: float,
                       last_good: int | None, directory: Path) -> str:
  """A NonFiniteLoss's message: what went non-finite at which step (flags in GUARDED's order), and
  where a rerun resumes."""
  what = {'loss': f'loss is {loss}', 'gradient norm': f'gradient norm is {grad_norm}'}
  bad = [what.get(name, f'{name} not finite') for name, ok in zip(GUARDED, finite) if not ok]
  kept = (f'The last good checkpoint (step {last_good}) is kept in {directory}; a rerun resumes '
          f'from it' if last_good is not None else
          'No checkpoint has been written (none was finite); a rerun starts from scratch')
  return (f'train: {", ".join(bad)} at step {step}; stopping. {kept}. Lower '
          f'config.train.learning_rate (--config.train.learning_rate=...) or check the data.')


def make_eval_step(model: mdl.Transformer) -> Callable:
  def eval_step(params: Any, batch: dict) -> dict:
    logits = model.apply({'params': params}, batch, deterministic=True)
    weights = losses.weights_of(batch['targets'])
    nll = losses.token_nll(logits, batch['targets'])
    return {'nll_sum': jnp.sum(nll * weights), 'tokens': jnp.sum(weights)}
  return eval_step


# --------------------------------------------------------------------------------------------------
# What a user watches: progress line, metrics.jsonl, TensorBoard.


def tb_tag(key: str) -> str:
  """A metrics.jsonl key -> its TensorBoard tag: 'eval_ln_ppl' -> 'eval/dev_ln_ppl' (the eval curve:
  dev ln(PPL) per subword at every eval_every step), 'eval_sample_bleu' -> 'eval/dev_sample_bleu',
  'train_loss' -> 'train/loss', 'learning_rate' -> 'train/learning_rate'."""
  if key.startswith('eval_'):
    return 'eval/dev_' + key[len('eval_'):]
  return 'train/' + key.removeprefix('train_')


# The final metrics attached to the run's hparams (TensorBoard's HPARAMS tab): metrics.jsonl key ->
# tag. Written once training ends; absent keys (BLEU of an LM run, an eval never run) are skipped.
HPARAM_METRICS = {'eval_ln_ppl': 'hparams/dev_ln_ppl', 'eval_word_ppl': 'hparams/dev_word_ppl',
                  'eval_sample_bleu': 'hparams/dev_sample_bleu', 'train_loss': 'hparams/train_loss',
                  'tokens_per_s': 'hparams/tokens_per_s'}


def flat_hparams(config: ml_collections.ConfigDict) -> dict[str, bool | int | float | str]:
  """The config flattened to 'group.field' -> scalar (the run's row, attention variant, sizes, data,
  recipe, seed, decoding); None -> 'None', lists and tuples (mesh rules) left out."""
  out: dict[str, bool | int | float | str] = {}

  def walk(prefix: str, node: ml_collections.ConfigDict) -> None:
    for key in sorted(node.keys()):
      value = node[key]
      if isinstance(value, ml_collections.ConfigDict):
        walk(f'{prefix}{key}.', value)
      elif isinstance(value, (bool, int, float, str)):
        out[prefix + key] = value
      elif value is None:
        out[prefix + key] = 'None'
  walk('', config)
  return out


def _tensorboardx():
  """tensorboardX's SummaryWriter, or None when it is not installed."""
  try:
    from tensorboardX import SummaryWriter
  except ImportError:
    return None
  return SummaryWriter


class _Mirror:
  """A TensorBoard log written locally and copied to a remote run directory (gs://...) at every
  flush: event files are appended to, which object stores cannot do, and they stay small."""

  def __init__(self, remote: Any):
    import tempfile
    self.remote = remote
    self.local = Path(tempfile.mkdtemp(prefix='mqa_repro_tb_'))

  def sync(self) -> None:
    for path in self.local.rglob('*'):
      if path.is_file():
        target = self.remote / path.relative_to(self.local).as_posix()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())

  def cleanup(self) -> None:
    import shutil
    shutil.rmtree(self.local, ignore_errors=True)


class Reporter:
  """metrics.jsonl, the progress line and TensorBoard (tensorboardX, optional) of the main process.

  TensorBoard (``workdir/tb``): every metrics.jsonl number as a scalar (``tb_tag``), the flattened
  config as hparams with the final metrics attached at the end (``HPARAM_METRICS``), and the text of
  the dev sample (training/samples.py). A local workdir is written in place; a gs:// one through
  epath (metrics.jsonl rewritten whole, tb/ staged locally and copied at each flush)."""

  def __init__(self, workdir: Any, total: int, use_tb: bool, progress: bool, log: Log):
    workdir = paths.run_path(workdir)
    self.workdir, self.total, self.log, self.progress = workdir, total, log, progress
    self.is_main = jax.process_index() == 0
    self.local = paths.is_local(workdir)
    self.metrics_path = workdir / 'metrics.jsonl'
    self.metrics_file = None
    self._lines: list[str] = []   # a remote metrics.jsonl: its whole text, rewritten at each write
    if self.is_main:
      if self.local:
        self.metrics_file = open(os.fspath(self.metrics_path), 'a')
      elif self.metrics_path.exists():
        self._lines = self.metrics_path.read_text().splitlines(keepends=True)
    self.tb, self.mirror = None, None
    if use_tb and self.is_main:
      writer = _tensorboardx()
      if writer is None:
        log('train: tensorboardX not installed (pip install "mqa_repro[viz]"); no TensorBoard logs')
      else:
        if self.local:
          tb_dir = os.fspath(workdir / 'tb')
        else:
          self.mirror = _Mirror(workdir / 'tb')
          tb_dir = str(self.mirror.local)
        self.tb = writer(tb_dir)
    self.start = time.time()
    self.first_step: int | None = None
    self._hparams = False

  def _flush_tb(self) -> None:
    self.tb.flush()
    if self.mirror is not None:
      self.mirror.sync()

  def write(self, step: int, values: dict[str, float]) -> None:
    if not self.is_main:
      return
    record = {'step': step, **{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                               for k, v in values.items()}}
    line = json.dumps(record) + '\n'
    if self.metrics_file is not None:
      self.metrics_file.write(line)
      self.metrics_file.flush()
    else:
      self._lines.append(line)
      self.metrics_path.write_text(''.join(self._lines))
    if self.tb is not None:
      for k, v in values.items():
        if isinstance(v, (int, float)) and math.isfinite(v):
          self.tb.add_scalar(tb_tag(k), v, step)
      self._flush_tb()

  def hparams_start(self, config: ml_collections.ConfigDict) -> None:
    """The run's hparams (``flat_hparams``) and the metrics they will be compared by."""
    if self.tb is None:
      return
    from tensorboardX.summary import hparams
    spec = tasks.get(config.task)
    has = {'eval_word_ppl': spec.word_perplexity,
           'eval_sample_bleu': spec.bleu and bool(config.train.get('tb_bleu_sentences', 0))}
    metrics = {tag: 0.0 for key, tag in HPARAM_METRICS.items() if has.get(key, True)}
    experiment, session_start, _ = hparams(flat_hparams(config), metrics)
    self.tb.file_writer.add_summary(experiment)
    self.tb.file_writer.add_summary(session_start)
    self._hparams = True
    self._flush_tb()

  def hparams_end(self, step: int, final: dict[str, Any], ok: bool = True) -> None:
    """The final metrics under their hparams tags, and the session's end (success or failure)."""
    if self.tb is None or not self._hparams:
      return
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
    for key, tag in HPARAM_METRICS.items():
      value = final.get(key)
      if isinstance(value, (int, float)) and math.isfinite(value):
        self.tb.add_scalar(tag, value, step)
    status = Status.Value('STATUS_SUCCESS' if ok else 'STATUS_FAILURE')
    content = HParamsPluginData(session_end_info=SessionEndInfo(status=status), version=0)
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
        plugin_name='hparams', content=content.SerializeToString()))
    self.tb.file_writer.add_summary(
        Summary(value=[Summary.Value(tag='_hparams_/session_end_info', metadata=metadata)]))
    self._hparams = False
    self._flush_tb()

  def text(self, step: int, tag: str, markdown: str) -> None:
    if self.tb is not None and markdown:
      self.tb.add_text(tag, markdown, step)
      self._flush_tb()

  def progress_line(self, step: int, loss: float, extra: str = '') -> None:
    if not (self.is_main and self.progress):
      return
    if self.first_step is None:
      self.first_step, self.start = step, time.time()
      return
    done = (step - self.first_step) / max(time.time() - self.start, 1e-9)
    eta = (self.total - step) / done if done > 0 else float('inf')
    width = 24
    filled = int(width * step / max(self.total, 1))
    bar = '#' * filled + '.' * (width - filled)
    eta_text = time.strftime('%H:%M:%S', time.gmtime(eta)) if math.isfinite(eta) else '?'
    line = f'[{bar}] step {step}/{self.total} loss {loss:.4f} ETA {eta_text} {extra}'
    end = '\r' if sys.stdout.isatty() and step < self.total else '\n'
    print(line, end=end, flush=True)

  def close(self):
    if self.metrics_file:
      self.metrics_file.close()
    if self.tb is not None:
      self.tb.close()
      if self.mirror is not None:
        self.mirror.sync()
        self.mirror.cleanup()


# --------------------------------------------------------------------------------------------------
# The trainer.


def _peak_flops(t: ml_collections.ConfigDict) -> float | None:
  if t.get('peak_tflops', 0):
    return t.peak_tflops * 1e12
  return costs.peak_flops(jax.devices()[0].device_kind)


class Trainer:
  """Builds mesh, shardings, state and compiled steps for one config; `train_and_evaluate` runs it.

  `data` is the task's TaskData (mqa_repro.data.pipeline), which training and the in-training eval
  read; ``Trainer.from_config`` loads it from ``config.data``. Without data a Trainer still builds
  and runs steps on batches it is given (``train_step``, ``compile_step``): benchmarks, multi-device
  checks and checkpoint conversion use it so. `mesh`: the device mesh to use (default: one built
  from ``config.mesh`` over `devices`, or all devices).
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
               data: Any = None, log: Log = print, devices: Sequence[Any] | None = None,
               mesh: jax.sharding.Mesh | None = None):
    self.config, self.log = cfg.validate(config), log
    self.workdir = paths.run_path(workdir)      # local, or gs:// (mqa_repro/paths.py)
    self.workdir.mkdir(parents=True, exist_ok=True)
    self.mesh = mesh if mesh is not None else sharding.make_mesh(config.mesh, devices)
    self.rules = sharding.resolve_rules(config, self.mesh, log)
    self.model = mdl.make_model(config)
    self.tx = make_optimizer(config.train)
    if data is not None and data.tokenizer.vocab_size > config.model.vocab_size:
      raise ValueError(f'vocabulary has {data.tokenizer.vocab_size} pieces but '
                       f'config.model.vocab_size is {config.model.vocab_size}')
    self.data = data

    # Abstract state -> shardings, without allocating anything.
    batch = mdl.dummy_batch(config.task, config.data.batch_size, config.data.max_length)
    def init(rng):
      variables = self.model.init(rng, batch)
      return variables['params']
    boxed = jax.eval_shape(init, jax.random.PRNGKey(0))
    with sharding.mesh_context(self.mesh, self.rules):
      self.param_shardings = sharding.logical_shardings(boxed, self.mesh, self.rules)
    self.abstract_params = nn.meta.unbox(boxed)
    abstract_opt = jax.eval_shape(self.tx.init, self.abstract_params)
    self.opt_shardings = sharding.state_shardings(abstract_opt, self.abstract_params,
                                                  self.param_shardings, self.mesh)
    replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
    self.state_shardings = {'step': replicated, 'params': self.param_shardings,
                            'opt_state': self.opt_shardings}
    self.abstract_state = {'step': jax.ShapeDtypeStruct((), jnp.int32), 'params': self.abstract_params,
                           'opt_state': abstract_opt}
    self.batch_sharding = sharding.batch_sharding(self.mesh, self.rules)
    self.batch_keys = tuple(batch)
    batch_shardings = {k: self.batch_sharding for k in self.batch_keys}

    def init_state(rng):
      params = nn.meta.unbox(init(rng))
      return {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': self.tx.init(params)}
    self._init_state = jax.jit(init_state, out_shardings=self.state_shardings)
    self._train_step = jax.jit(make_train_step(self.model, config.train),
                               in_shardings=(self.state_shardings, batch_shardings, replicated,
                                             replicated),
                               out_shardings=(self.state_shardings, replicated), donate_argnums=0)
    self._eval_step = jax.jit(make_eval_step(self.model),
                              in_shardings=(self.param_shardings, batch_shardings),
                              out_shardings=replicated)
    self._finite = jax.jit(make_finite_check(), out_shardings=replicated)
    # Typed key: its implementation decides the dropout RNG's cost (threefry is slow on GPUs).
    self.base_rng = jax.random.key(config.train.seed, impl=cfg.PRNG_IMPLS[config.train.prng_impl])
    self.schedule = jnp.asarray(schedule_values(config.train))

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                  log: Log = print, **kwargs: Any) -> 'Trainer':
    """A Trainer with the data ``config.data`` names: this host's share of every batch, the
    vocabulary trained into (or read from) the run directory. The config and the mesh are checked
    first: a bad field or ``config.mesh`` fails at once, before any corpus is read or built."""
    from mqa_repro.data.pipeline import load_task_data
    cfg.validate(config)
    if kwargs.get('mesh') is None:
      kwargs['mesh'] = sharding.make_mesh(config.mesh, kwargs.pop('devices', None))
    sharding.resolve_rules(config, kwargs['mesh'], log=lambda s: None)   # __init__ logs its notes
    data = load_task_data(config.task, config.data, workdir, log=log,
                          host_index=jax.process_index(), host_count=jax.process_count())
    return cls(config, workdir, data=data, log=log, **kwargs)

  # ---- building blocks ---------------------------------------------------------------------------

  def context(self):
    """Mesh + logical rules active while tracing, so activation constraints resolve."""
    return sharding.mesh_context(self.mesh, self.rules)

  def train_step(self, state: dict, batch: dict[str, jax.Array]) -> tuple[dict, dict]:
    """One step on a global batch (``to_global``), jitted; the old state is donated. Call it inside
    ``with trainer.context():`` (one context around a loop of steps keeps its cost out of them)."""
    return self._train_step(state, batch, self.base_rng, self.schedule)

  def compile_step(self, state: dict, batch: dict[str, jax.Array]) -> Callable:
    """The step compiled ahead of time for these shapes: (state, batch) -> (state, outputs), to call
    inside ``with trainer.context():`` as ``train_step``."""
    with self.context():
      compiled = self._train_step.lower(state, batch, self.base_rng, self.schedule).compile()
    return lambda state, batch: compiled(state, batch, self.base_rng, self.schedule)

  def init_opt_state(self, params: Any) -> Any:
    """A fresh optimizer state for `params`, sharded as training shards it."""
    with self.context():
      return jax.jit(self.tx.init, out_shardings=self.opt_shardings)(params)

  def abstract_batch(self) -> dict[str, jax.ShapeDtypeStruct]:
    shape = (self.config.data.batch_size, self.config.data.max_length)
    return {k: jax.ShapeDtypeStruct(shape, jnp.int32, sharding=self.batch_sharding)
            for k in self.batch_keys}

  def lower_train_step(self):
    """Lower the step ahead of time from abstract shapes (no data, no parameters allocated)."""
    abstract_state = jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        self.abstract_state, self.state_shardings)
    with self.context():
      return self._train_step.lower(abstract_state, self.abstract_batch(), self.base_rng,
                                    self.schedule)

  def init_state(self) -> dict:
    with self.context():
      return self._init_state(jax.random.PRNGKey(self.config.train.seed))

  def to_global(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    return sharding.global_batch({k: batch[k] for k in self.batch_keys}, self.batch_sharding)

  def evaluate(self, params: Any, split: str = 'dev') -> dict[str, float]:
    total_nll, tokens = 0.0, 0.0
    limit = self.config.train.eval_steps
    with self.context():
      for i, batch in enumerate(self.data.eval_batches(split, self.config.data.batch_size)):
        if limit and i >= limit:
          break
        out = self._eval_step(params, self.to_global(batch))
        total_nll += float(out['nll_sum'])
        tokens += float(out['tokens'])
    result = {'eval_ln_ppl': losses.log_ppl(total_nll, tokens), 'eval_tokens': tokens}
    if tasks.get(self.config.task).word_perplexity and not limit:
      words = self.data.word_count(split)
      result['eval_word_ppl'] = losses.word_perplexity(total_nll, words)
      result['eval_words'] = words
    return result

  def write_run_files(self, state: dict) -> None:
    if jax.process_index() != 0:
      return
    (self.workdir / 'config.json').write_text(ckpt.config_to_json(self.config))
    info = {'name': self.config.name, 'task': self.config.task,
            'params': mdl.count_params(self.abstract_params),
            'mesh': dict(self.mesh.shape), 'devices': [d.device_kind for d in jax.devices()][:1] +
            [f'x{jax.device_count()}'], 'rules': [list(r) for r in self.rules],
            'param_shapes': mdl.param_shapes(self.abstract_params),
            'param_shardings': sharding.describe(self.param_shardings)}
    (self.workdir / 'model_info.json').write_text(json.dumps(info, indent=1))

  # ---- the loop ----------------------------------------------------------------------------------

  def train_and_evaluate(self) -> dict[str, Any]:
    if self.data is None:
      raise ValueError('Trainer.train_and_evaluate needs data: Trainer(config, workdir, data=...) or '
                       'Trainer.from_config(config, workdir)')
    c, t, log = self.config, self.config.train, self.log
    checkpointer = ckpt.Checkpointer(self.workdir, keep=t.keep_checkpoints,
                                     async_save=t.async_checkpoint)
    saved_config = self.workdir / 'config.json'
    if saved_config.is_file():
      old = ckpt.config_from_json(saved_config.read_text())
      if old.model.to_dict() != ckpt.config_from_json(ckpt.config_to_json(c)).model.to_dict():
        raise ValueError(f'{saved_config} holds a different model config than the one given; use a new '
                         f'--workdir or the same config to resume')
    state = None
    if checkpointer.steps():
      abstract = lambda tree, shard: jax.tree_util.tree_map(
          lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shard)
      restored = checkpointer.restore_latest(abstract(self.abstract_params, self.param_shardings),
                                             abstract(self.abstract_state['opt_state'],
                                                      self.opt_shardings), log)
      if restored is not None:
        params, opt_state, meta = restored
        step = int(meta['step'])
        state = {'step': jax.device_put(jnp.asarray(step, jnp.int32), self.state_shardings['step']),
                 'params': params, 'opt_state': opt_state}
        log(f'train: resumed {self.workdir} at step {step} (data position {meta["data_step"]})')
    if state is None:
      state = self.init_state()
    self.write_run_files(state)
    start = int(state['step'])
    reporter = Reporter(self.workdir, t.num_train_steps, t.tensorboard, t.progress, log)
    reporter.hparams_start(c)
    # The dev sample decoded at eval steps for TensorBoard (training/samples.py): on every process
    # (the decode runs on the mesh), whenever TensorBoard can be written at all.
    sample = None
    if t.tensorboard and t.eval_every and _tensorboardx() is not None:
      from mqa_repro.training import samples
      sample = samples.DevSample.from_data(c, self.data, self.mesh)
    peak = _peak_flops(t)
    schedule = learning_rate_schedule(t)
    compiled = self.compile_step(state, self.to_global(next(self.data.train_batches(start))))
    # model FLOPs of the padded step, from the dimensions (XLA's cost analysis misses cuBLAS calls)
    length = c.data.max_length
    step_flops = costs.train_flops(mdl.ModelSpec.from_config(c.model), c.data.batch_size,
                                   length if tasks.get(c.task).encoder else 0, length)
    log(f'train: {c.name}: {mdl.count_params(self.abstract_params):,} parameters, mesh '
        f'{dict(self.mesh.shape)}, {jax.device_count()} x {jax.devices()[0].device_kind}, '
        f'steps {start}..{t.num_train_steps}')

    batches = self.data.train_batches(start)
    last_good = start if start else None      # the newest checkpoint known to hold finite values
    window_start, window_tokens, window_steps = time.time(), 0.0, 0
    summary: dict[str, Any] = {}
    ok = False
    try:
      for step in range(start, t.num_train_steps):
        batch = self.to_global(next(batches))
        with self.context():
          state, out = compiled(state, batch)
        done = step + 1
        need_log = done % t.log_every == 0 or done == t.num_train_steps or done == start + 1
        need_eval = t.eval_every and (done % t.eval_every == 0 or done == t.num_train_steps)
        need_ckpt = done % t.checkpoint_every == 0 or done == t.num_train_steps
        window_steps += 1
        if need_log or need_eval or need_ckpt:
          # One host sync per logged step, not per step; a checkpoint step always comes here, so
          # nothing non-finite is ever saved.
          finite = np.asarray(self._finite(state, out))
          checkpointer.record_committed()   # the integrity record of a save that has landed
          loss = float(out['loss'])
          if not finite.all():
            raise NonFiniteLoss(divergence_message(done, finite, loss, float(out['grad_norm']),
                                                   last_good, checkpointer.directory))
          window_tokens += float(out['tokens']) * window_steps  # tokens are ~constant per packed batch
          elapsed = time.time() - window_start
          step_time = elapsed / window_steps
          tokens_per_s = window_tokens / max(elapsed, 1e-9)
          record = {'train_loss': loss, 'train_nll': float(out['nll']),
                    'grad_norm': float(out['grad_norm']),
                    'learning_rate': float(schedule(step)),
                    'step_time_s': step_time, 'tokens_per_s': tokens_per_s}
          if step_flops and peak:
            record['mfu'] = costs.mfu(step_flops, step_time, peak, jax.device_count())
          sample_text = ''
          if need_eval:
            record.update(self.evaluate(state['params']))
            if sample is not None:
              scores, sample_text = sample.run(state['params'])
              record.update(scores)
          reporter.write(done, record)
          reporter.text(done, 'samples/dev', sample_text)
          reporter.progress_line(done, loss, ' '.join(f'{k} {v:.3f}' for k, v in record.items()
                                                       if k.startswith('eval_') and 'tokens' not in k
                                                       and 'words' not in k))
          summary = {'step': done, **record}
          window_start, window_tokens, window_steps = time.time(), 0.0, 0
        if need_ckpt:
          checkpointer.save(done, state['params'], state['opt_state'],
                            {'step': done, 'data_step': done, 'seed': t.seed, 'name': c.name})
          last_good = done
      ok = True
    finally:
      checkpointer.close()
      reporter.hparams_end(summary.get('step', start), summary, ok)
      reporter.close()
    return summary


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       log: Log = print) -> dict[str, Any]:
  """Train `config` in `workdir` (resuming from its latest checkpoint) and return the last metrics."""
  return Trainer.from_config(config, workdir, log=log).train_and_evaluate()
