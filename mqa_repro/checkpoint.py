"""Orbax checkpoints of a run: parameters, optimizer state and the data position, saved with the run.

A run directory (the ``--workdir``) holds:

  config.json        the resolved config (what `decode` / `evaluate` rebuild the model from)
  vocab.model        the SentencePiece vocabulary (written by the data layer)
  checkpoints/<step> orbax items: ``params``, ``opt_state``, ``meta`` (step, data position, seed)
  metrics.jsonl      one JSON object per logged step
  model_info.json    parameter shapes, counts and shardings
  tb/                TensorBoard scalars

Saves are asynchronous (training continues while the previous step is written) and orbax commits a
step only once it is complete, so a killed run never leaves a half-written step that looks finished.
A step that is present but unreadable (a disk fault, a partial copy) is skipped on restore in favour
of the previous one, with a message saying so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import jax
import ml_collections
import orbax.checkpoint as ocp

Log = Callable[[str], None]


def config_to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json_best_effort(indent=1, sort_keys=True)


def config_from_json(text: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(json.loads(text))
  c.mesh.rules = tuple((name, tuple(axes) if isinstance(axes, list) else axes)
                       for name, axes in c.mesh.rules)
  return c


class Checkpointer:
  """Keeps the last ``keep`` steps of one run directory."""

  def __init__(self, workdir: str | os.PathLike, *, keep: int = 3, async_save: bool = True):
    self.directory = Path(workdir).resolve() / 'checkpoints'
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                           create=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(self, step: int, params: Any, opt_state: Any, meta: dict[str, Any]) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params), opt_state=ocp.args.StandardSave(opt_state),
        meta=ocp.args.JsonSave(meta)), force=True)

  def restore_latest(self, abstract_params: Any, abstract_opt_state: Any,
                     log: Log = print) -> tuple[Any, Any, dict[str, Any]] | None:
    """The newest readable step as (params, opt_state, meta); None when there is none."""
    for step in reversed(self.steps()):
      try:
        restored = self.manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract_params),
            opt_state=ocp.args.StandardRestore(abstract_opt_state), meta=ocp.args.JsonRestore()))
        return restored.params, restored.opt_state, dict(restored.meta)
      except Exception as e:  # orbax raises various types for truncated / missing files
        aside = self.directory / f'unreadable-{step}'
        log(f'checkpoint: step {step} in {self.directory} is unreadable ({type(e).__name__}: '
            f'{(str(e).splitlines() or [""])[0][:200]}); moved it to {aside} and falling back to '
            f'the previous checkpoint')
        (self.directory / str(step)).rename(aside)
        self.manager.reload()
    return None

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def load_for_inference(workdir: str | os.PathLike, step: int | None = None, log: Log = print):
  """(config, params, tokenizer) of a run, for decoding and evaluation on one host.

  Restores only the ``params`` item (not the optimizer state); arrays come back as saved (float32).
  """
  from mqa_repro.data.tokenizer import Tokenizer

  workdir = Path(workdir)
  config_path = workdir / 'config.json'
  if not config_path.is_file():
    raise FileNotFoundError(f'{config_path} not found: is {workdir} a training run directory '
                            f'(mqa-repro train --workdir ...)?')
  config = config_from_json(config_path.read_text())
  vocab = Path(config.data.vocab_path) if config.data.vocab_path else workdir / 'vocab.model'
  if not vocab.is_file():
    raise FileNotFoundError(f'vocabulary {vocab} not found (it is written at the start of training)')
  manager = ocp.CheckpointManager(workdir.resolve() / 'checkpoints')
  steps = sorted(manager.all_steps())
  if not steps:
    raise FileNotFoundError(f'no checkpoint under {workdir / "checkpoints"}')
  candidates = [step] if step is not None else list(reversed(steps))
  if step is not None and step not in steps:
    raise ValueError(f'step {step} not in {workdir / "checkpoints"} (have {steps})')
  for s in candidates:
    try:
      restored = manager.restore(s, args=ocp.args.Composite(params=ocp.args.StandardRestore()))
      log(f'loaded {workdir} step {s}')
      params = jax.tree_util.tree_map(lambda x: jax.device_put(x), restored.params)
      return config, params, Tokenizer.load(str(vocab))
    except Exception as e:
      if step is not None:
        raise
      log(f'checkpoint: step {s} is unreadable ({type(e).__name__}); trying the previous one')
  raise FileNotFoundError(f'no readable checkpoint under {workdir / "checkpoints"}')
