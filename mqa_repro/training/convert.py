"""Turn a trained run into a grouped-query or multi-query run, ready to uptrain (Ainslie et al. 2023).

    mqa-repro convert --from RUN --to NEW --kv-heads G [--init mean|first|random] [--step S]
                      [--uptrain-fraction 0.05] [--config.KEY=VALUE ...]      (cli/convert.py)

The model keeps its query heads h and gets G key/value heads (G divides the source's kv heads; G = 1
is multi-query). Each new kv head stands for a contiguous group of source heads, the grouping the
attention layer uses (query head n reads kv head n // (h / G)):
  mean    the group's K and V projection heads averaged (the GQA paper's choice);
  first   the group's first head kept, the others dropped;
  random  fresh K/V projections, everything else kept: how much the conversion itself preserves.
Queries, outputs, FFNs, norms and embeddings are copied. d_ff is NOT widened (unlike the from-scratch
rows of Tables 1 and 3, which keep the parameter count equal): a converted model is smaller, and the
command says by how much.

The new run directory holds ``config.json`` (num_kv_heads = G and the uptraining schedule), the
source's vocabulary, a checkpoint at step 0 (converted parameters, a fresh optimizer state) and
``converted_from.json``. ``mqa-repro train --workdir NEW`` uptrains it; decode, evaluate and bench use it
like any run.

Uptraining schedule (a warm restart): ``--uptrain-fraction`` alpha of the source's steps, at the
source's peak learning rate after a warm-up of a tenth of them, decaying linearly to 0 over all of
them. Continuing the source's own schedule is no option: it has decayed to 0 by the source's last
step, so there would be nothing to learn with; the warm-up is there because the optimizer state is
new and the converted K/V heads start away from any optimum.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

INITS = ('mean', 'first', 'random')
Log = Callable[[str], None]


def _is_kv(path) -> bool:
  return getattr(path[-1], 'key', None) in ('key', 'value')


def convert_params(params: Any, num_kv_heads: int, init: str = 'mean', fresh: Any = None) -> Any:
  """K/V projections [D, K, H] of every attention layer -> [D, G, H]; everything else unchanged.

  `fresh` (the new model's own initial parameters) supplies the K/V weights for init='random'.
  """
  from mqa_repro.nn import transformer as mdl
  if init not in INITS:
    raise ValueError(f'--init must be one of {INITS}, got {init!r}')
  if init == 'random' and fresh is None:
    raise ValueError("init='random' needs the new model's initial parameters")
  params = mdl.nn.meta.unbox(params)
  if init == 'mean':
    return mdl.convert_kv_heads(params, num_kv_heads)
  fresh_leaves = dict(jax.tree_util.tree_flatten_with_path(mdl.nn.meta.unbox(fresh))[0]) if fresh else {}

  def one(path, x):
    if not _is_kv(path):
      return x
    d, k, h = x.shape
    if k % num_kv_heads:
      raise ValueError(f'cannot group {k} kv heads into {num_kv_heads}: not divisible')
    if init == 'first':
      return x.reshape(d, num_kv_heads, k // num_kv_heads, h)[:, :, 0]
    return jnp.asarray(fresh_leaves[path], x.dtype)
  return jax.tree_util.tree_map_with_path(one, params)


def converted_config(source: ml_collections.ConfigDict, num_kv_heads: int, name: str,
                     fraction: float, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """The source's config with G kv heads and the uptraining schedule (module docstring), then
  `overrides` (``--config.KEY=VALUE``) on top."""
  from mqa_repro import config as cfg
  m = source.model
  if num_kv_heads < 1 or m.num_kv_heads % num_kv_heads:
    raise ValueError(f'--kv-heads {num_kv_heads} must divide the source\'s {m.num_kv_heads} kv heads '
                     f'(num_heads {m.num_heads})')
  if not 0 < fraction <= 1:
    raise ValueError(f'--uptrain-fraction must be in (0, 1], got {fraction}')
  c = ml_collections.ConfigDict(source.to_dict())
  c.model.num_kv_heads = num_kv_heads
  c.name = name
  c.label = {1: 'multi-query'}.get(num_kv_heads, f'grouped-query g={num_kv_heads}') + ' (uptrained)'
  t = c.train
  steps = max(1, math.ceil(fraction * source.train.num_train_steps))
  t.num_train_steps = steps
  t.warmup_steps = max(1, steps // 10)
  t.decay_steps = steps
  t.checkpoint_every = min(t.checkpoint_every, steps)
  t.eval_every = min(t.eval_every, steps) if t.eval_every else 0
  t.log_every = min(t.log_every, steps)
  c.data.vocab_path = ''          # the copy in the new run directory
  cfg.apply_overrides(c, overrides)
  return cfg.validate(c)


def params_fingerprint(params: Any) -> str:
  """sha256 (first 16 hex digits) of every parameter's float32 bytes, leaves in tree order: tells two
  trainings of the same config apart, so runs converted from one are never set beside the other."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    h.update(jax.tree_util.keystr(path).encode())
    h.update(np.ascontiguousarray(np.asarray(leaf, np.float32)).tobytes())
  return h.hexdigest()[:16]


def convert_run(source_dir: str | Path, target_dir: str | Path, num_kv_heads: int, *, init: str = 'mean',
                step: int | None = None, fraction: float = 0.05, overrides: Sequence[str] = (),
                log: Log = print) -> dict[str, Any]:
  """Write the converted run (module docstring); returns what converted_from.json records."""
  from mqa_repro.nn import transformer as mdl
  from mqa_repro.training import checkpoint
  from mqa_repro.training.trainer import Trainer

  from mqa_repro import paths
  source_dir, target_dir = paths.run_path(source_dir, '--from'), paths.run_path(target_dir, '--to')
  if (target_dir / 'config.json').exists() or (target_dir / 'checkpoints').exists():
    raise ValueError(f'{target_dir} already holds a run; choose a new --to directory')
  source, params, tokenizer = checkpoint.load_for_inference(source_dir, step=step, log=log)
  config = converted_config(source, num_kv_heads, target_dir.name, fraction, overrides)
  target_dir.mkdir(parents=True, exist_ok=True)
  (target_dir / 'vocab.model').write_bytes(tokenizer.model_proto)
  trainer = Trainer(config, target_dir, log=log)
  fresh = trainer.init_state()['params'] if init == 'random' else None
  new = convert_params(params, num_kv_heads, init, fresh)
  new = jax.tree_util.tree_map(lambda x, s: jax.device_put(jnp.asarray(x), s), new,
                               trainer.param_shardings)
  opt_state = trainer.init_opt_state(new)
  ckpt = checkpoint.Checkpointer(target_dir, keep=config.train.keep_checkpoints, async_save=False)
  ckpt.save(0, new, opt_state, {'step': 0, 'data_step': 0, 'seed': config.train.seed, 'name': config.name})
  ckpt.close()
  trainer.write_run_files({'params': new})
  before, after = mdl.count_params(params), mdl.count_params(new)
  record = {'source': str(source_dir.resolve() if paths.is_local(source_dir) else source_dir), 'source_name': source.name,
            'source_step': int(step if step is not None else checkpoint.latest_step(source_dir)),
            'source_fingerprint': params_fingerprint(params),
            'source_kv_heads': source.model.num_kv_heads, 'kv_heads': num_kv_heads, 'init': init,
            'params_before': before, 'params_after': after, 'params_lost': before - after,
            'uptrain_steps': config.train.num_train_steps, 'uptrain_fraction': fraction,
            'schedule': 'warm restart: source peak rate, warm-up steps/10, linear decay to 0'}
  (target_dir / 'converted_from.json').write_text(json.dumps(record, indent=1) + '\n')
  return record

