"""Orbax checkpoints of a run: parameters, optimizer state and the data position, saved with the run.

A run directory (the ``--workdir``) holds:

  config.json        the resolved config (what `decode` / `evaluate` rebuild the model from)
  vocab.model        the SentencePiece vocabulary (written by the data layer)
  checkpoints/<step> orbax items: ``params``, ``opt_state``, ``meta`` (step, data position, seed),
                     and SHA256SUMS: the sha256 of every file orbax wrote for the step
  metrics.jsonl      one JSON object per logged step
  model_info.json    parameter shapes, counts and shardings
  tb/                TensorBoard: every metric as a scalar (eval/dev_ln_ppl: the eval curve), the
                     flattened config as hparams with the final metrics, greedy BLEU of a small dev
                     sample (eval/dev_sample_bleu) and sample translations / continuations as text

Saves are asynchronous (training continues while the previous step is written) and orbax commits a
step only once it is complete, so a killed run never leaves a half-written step that looks finished.

Integrity. Orbax checks neither contents nor completeness of what it reads back: bytes overwritten
inside an array file restore silently, and with explicit restore targets a step whose ``_METADATA``
is gone restores too. So each committed step gets a ``SHA256SUMS`` record (``sha256sum -c``
format, checkable by hand), and every load verifies it first: training's resume and inference alike.
A step that fails (a file changed, or missing) or that orbax cannot read is skipped in favour of the
previous one, with a message naming the file. The record is written once orbax has COMMITTED the
step (the async save's finalize thread has renamed it into place): by the next save (orbax's own
``save`` waits for the previous one first, so this costs nothing), at a logged step of the training
loop if the write has landed by then (``record_committed``), and at ``close``. orbax's own hook,
``AsyncOptions.post_finalization_callback``, does not fit: it gets no path, runs BEFORE the commit
rename, and exists only for async saves. A step killed between its commit and its record has no
record: it is loaded with a message saying it is unverified (so are checkpoints written before
records existed), never silently.

Topology. Inference restores the parameters with explicit targets built from the config (shapes,
dtypes and one device, or a given mesh's shardings), so a checkpoint written on any number of
devices (a pod, 8 fake CPU devices) loads on whatever this process has; training's resume does the
same with the trainer's shardings.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import ml_collections
import orbax.checkpoint as ocp

from mqa_repro import paths
from mqa_repro.nn import transformer as mdl
from mqa_repro.training import sharding

Log = Callable[[str], None]


def config_to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json_best_effort(indent=1, sort_keys=True)


def config_from_json(text: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(json.loads(text))
  c.mesh.rules = tuple((name, tuple(axes) if isinstance(axes, list) else axes)
                       for name, axes in c.mesh.rules)
  return c


INTEGRITY_FILE = 'SHA256SUMS'


class CorruptCheckpoint(ValueError):
  pass


def _sha256(path) -> str:
  h = hashlib.sha256()
  with path.open('rb') as f:
    while chunk := f.read(1 << 22):
      h.update(chunk)
  return h.hexdigest()


def write_integrity(step_dir) -> None:
  """Record the sha256 of every file of a committed step in step_dir/SHA256SUMS (atomically where
  the file system renames atomically). `step_dir`: a pathlib or epath Path (local or gs://)."""
  step_dir = paths.run_path(step_dir)
  # (epath's rglob refuses '**' patterns: a walk lists a bucket's files as cheaply)
  files = sorted((root / name for root, _, names in step_dir.walk() for name in names
                  if name != INTEGRITY_FILE), key=str)
  record = ''.join(f'{_sha256(p)}  {p.relative_to(step_dir).as_posix()}\n' for p in files)
  tmp = step_dir / f'.{INTEGRITY_FILE}.tmp'
  tmp.write_text(record)
  tmp.replace(step_dir / INTEGRITY_FILE)


def verify_integrity(step_dir) -> bool:
  """True when every file the step's record lists is there with its recorded sha256; False when the
  step has no record; CorruptCheckpoint naming the first file that is missing or differs."""
  step_dir = paths.run_path(step_dir)
  record = step_dir / INTEGRITY_FILE
  if not record.is_file():
    return False
  for line in record.read_text().splitlines():
    digest, sep, name = line.partition('  ')
    if not sep:
      raise CorruptCheckpoint(f'{record} is damaged (a line without "<sha256>  <file>")')
    path = step_dir / name
    if not path.is_file():
      raise CorruptCheckpoint(f'{path} is missing (listed in {record})')
    if _sha256(path) != digest:
      raise CorruptCheckpoint(f'{path} does not match its sha256 in {record}')
  return True


class Checkpointer:
  """Keeps the last ``keep`` steps of one run directory (``read_only``: loads only, moves nothing)."""

  def __init__(self, workdir: str | os.PathLike, *, keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    workdir = paths.run_path(workdir)     # local, or gs:// (mqa_repro/paths.py)
    self.directory = (workdir.resolve() if paths.is_local(workdir) else workdir) / 'checkpoints'
    self.read_only = read_only
    # (orbax's own read_only option warns on every load; this one just never saves or moves)
    options = ocp.CheckpointManagerOptions(max_to_keep=None if read_only else keep,
                                           enable_async_checkpointing=async_save,
                                           create=not read_only)
    self.manager = ocp.CheckpointManager(self.directory, options=options)
    self._unrecorded: list[int] = []       # saved, not yet known to be committed

  def steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(self, step: int, params: Any, opt_state: Any, meta: dict[str, Any]) -> None:
    self.record_committed(wait=True)        # orbax's save would wait for the previous one anyway
    self.manager.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params), opt_state=ocp.args.StandardSave(opt_state),
        meta=ocp.args.JsonSave(meta)), force=True)
    self._unrecorded.append(step)
    self.record_committed(wait=False)       # a synchronous save has committed already

  def record_committed(self, wait: bool = False) -> None:
    """Write the integrity record of each saved step once orbax has committed it (without `wait`:
    only if the async save has finished; the training loop polls this at its logged steps)."""
    if not self._unrecorded or (not wait and self.manager.is_saving_in_progress()):
      return
    self.manager.wait_until_finished()
    if jax.process_index() == 0:
      for step in self._unrecorded:
        step_dir = self.directory / str(step)
        if step_dir.is_dir():               # not already removed by max_to_keep
          write_integrity(step_dir)
    self._unrecorded = []

  def _restore_newest(self, steps: list[int], restore: Callable[[int], Any], log: Log,
                      fall_back: bool = True) -> tuple[int, Any] | None:
    """(step, restore(step)) for the first of `steps` that passes its integrity check and reads;
    the others are reported (and, unless read-only, moved aside so later saves do not meet them).
    Without `fall_back` the first step's error is raised instead."""
    for step in steps:
      try:
        verified = verify_integrity(self.directory / str(step))
        restored = restore(step)
      except Exception as e:  # CorruptCheckpoint, or orbax's various errors for unreadable files
        if not fall_back:
          raise
        why = (str(e) if isinstance(e, CorruptCheckpoint) else
               f'{type(e).__name__}: {(str(e).splitlines() or [""])[0][:200]}')
        moved = ''
        if not self.read_only:
          aside = self.directory / f'unreadable-{step}'
          while aside.exists():             # an earlier fallback already used the name
            aside = aside.with_name(aside.name + '+')
          (self.directory / str(step)).rename(aside)
          self.manager.reload()
          moved = f' moved it to {aside} and'
        log(f'checkpoint: WARNING: step {step} in {self.directory} is unreadable or damaged '
            f'({why});{moved} falling back to the previous checkpoint')
        continue
      if not verified:
        log(f'checkpoint: WARNING: step {step} in {self.directory} has no {INTEGRITY_FILE} (written '
            f'before integrity records, or killed between its commit and its record): loading it '
            f'unverified')
      return step, restored
    return None

  def restore_latest(self, abstract_params: Any, abstract_opt_state: Any,
                     log: Log = print) -> tuple[Any, Any, dict[str, Any]] | None:
    """The newest intact step as (params, opt_state, meta); None when there is none."""
    def restore(step):
      return self.manager.restore(step, args=ocp.args.Composite(
          params=ocp.args.StandardRestore(abstract_params),
          opt_state=ocp.args.StandardRestore(abstract_opt_state), meta=ocp.args.JsonRestore()))
    found = self._restore_newest(list(reversed(self.steps())), restore, log)
    if found is None:
      return None
    restored = found[1]
    return restored.params, restored.opt_state, dict(restored.meta)

  def restore_params(self, abstract_params: Any, step: int | None = None,
                     log: Log = print) -> tuple[int, Any]:
    """(step, params) of `step` (which must be intact), or of the newest intact step."""
    steps = self.steps()
    if not steps:
      raise FileNotFoundError(f'no checkpoint under {self.directory}')
    if step is not None and step not in steps:
      raise ValueError(f'step {step} not in {self.directory} (have {steps})')

    def restore(s):
      return self.manager.restore(s, args=ocp.args.Composite(
          params=ocp.args.StandardRestore(abstract_params))).params
    # the step asked for, or an error saying why not
    found = self._restore_newest([step] if step is not None else list(reversed(steps)), restore,
                                 log, fall_back=step is None)
    if found is None:
      raise FileNotFoundError(f'no readable checkpoint under {self.directory}')
    return found

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.record_committed(wait=True)
    self.manager.close()


def latest_step(workdir: str | os.PathLike) -> int | None:
  """The newest committed step under a run directory, by name (orbax names committed steps by
  number), without opening it; None when there is none."""
  d = paths.run_path(workdir) / 'checkpoints'
  steps = [int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit()] if d.is_dir() else []
  return max(steps) if steps else None


def abstract_params(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None) -> Any:
  """Restore targets for a run's parameters: ShapeDtypeStructs from the config's model, placed on
  one device (the first of this process), or sharded over `mesh` by the config's logical rules."""
  boxed = mdl.abstract_params(mdl.make_model(config), config.task)
  if mesh is None:
    one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    shardings = jax.tree_util.tree_map(lambda _: one, nn.meta.unbox(boxed))
  else:
    rules = sharding.resolve_rules(config, mesh, log=lambda m: None)
    with sharding.mesh_context(mesh, rules):
      shardings = sharding.logical_shardings(boxed, mesh, rules)
  return jax.tree_util.tree_map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                nn.meta.unbox(boxed), shardings)


# The model fields that decide the parameters' shapes: an override of one of them cannot load a
# run's checkpoint (everything else, e.g. attention_impl, window or dtype, can change at inference).
SHAPE_FIELDS = ('vocab_size', 'd_model', 'd_ff', 'num_heads', 'num_kv_heads', 'qk_dim', 'v_dim',
                'encoder_layers', 'decoder_layers', 'max_length', 'share_embeddings')


def saved_config(workdir: str | os.PathLike, overrides: Sequence[str] = (), *,
                 keep_shapes: bool = False) -> ml_collections.ConfigDict:
  """A run's own config.json with ``KEY=VALUE`` overrides applied, validated. `keep_shapes`
  refuses overrides of SHAPE_FIELDS (inference: the checkpoint fixes them)."""
  from mqa_repro import config as cfg
  workdir = paths.run_path(workdir)
  path = workdir / 'config.json'
  if not path.is_file():
    raise FileNotFoundError(f'{path} not found: is {workdir} a training run directory '
                            f'(mqa-repro train --workdir ...)?')
  config = config_from_json(path.read_text())
  before = {f: config.model.get(f) for f in SHAPE_FIELDS}
  cfg.apply_overrides(config, overrides)
  changed = [f for f in SHAPE_FIELDS if config.model.get(f) != before[f]]
  if keep_shapes and changed:
    raise ValueError(f'--config.model.{changed[0]} changes the shape of the parameters saved in '
                     f'{workdir}; inference can change only what the checkpoint does not fix')
  return cfg.validate(config)


def load_for_inference(workdir: str | os.PathLike, step: int | None = None, log: Log = print,
                       mesh: jax.sharding.Mesh | None = None, overrides: Sequence[str] = ()):
  """(config, params, tokenizer) of a run, for decoding and evaluation.

  The config is the run's config.json with `overrides` applied (``saved_config``: everything but the
  parameters' shapes may change, e.g. ``model.attention_impl=pallas``). Restores only the
  ``params`` item (not the optimizer state), as saved (float32), onto this process's first device,
  or sharded over `mesh`, whatever devices wrote it. Without `step`, the newest step that passes its
  integrity check and reads; with `step`, that one or an error.
  """
  from mqa_repro.data.tokenizer import Tokenizer

  workdir = paths.run_path(workdir)
  config = saved_config(workdir, overrides, keep_shapes=True)
  vocab = (paths.run_path(config.data.vocab_path, 'config.data.vocab_path') if config.data.vocab_path
           else workdir / 'vocab.model')
  if not vocab.is_file():
    raise FileNotFoundError(f'vocabulary {vocab} not found (it is written at the start of training)')
  if not (workdir / 'checkpoints').is_dir():
    raise FileNotFoundError(f'no checkpoint under {workdir / "checkpoints"}')
  checkpointer = Checkpointer(workdir, read_only=True)
  s, params = checkpointer.restore_params(abstract_params(config, mesh), step, log)
  log(f'loaded {workdir} step {s}')
  return config, params, Tokenizer.load(vocab)
