"""Device mesh, logical-axis rules and the shardings of parameters, optimizer state and batches.

Parameters and activations carry logical axis names (``embed``, ``heads``, ``kv_heads``, ``mlp``,
``vocab``, ``batch`` ...; see nn/transformer.py and nn/attention.py). ``config.mesh.rules`` maps them
to the mesh axes ``data``, ``fsdp`` and ``model``. The same code runs on one CPU, eight fake CPU
devices, GPUs and a multi-host TPU pod: only the mesh shape changes.

Multi-query / grouped-query attention has fewer K/V heads than query heads; a single K/V head cannot be
split across a model axis of size 2. Such kv heads are replicated over ``model`` (mesh-tensorflow did the
same with its one "memory head"), which costs a little redundant K/V projection work and no
communication. Layouts that cannot work at all are refused here, before anything compiles.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXES = ('data', 'fsdp', 'model')


def maybe_initialize_distributed(log: Callable[[str], None] = print) -> None:
  """Join a multi-process run (TPU pod hosts, or one process per GPU) before touching devices.

  Triggered by ``MQA_REPRO_DISTRIBUTED=1`` or JAX's own coordinator variables. On a TPU pod slice
  ``jax.distributed.initialize()`` discovers the other hosts itself; elsewhere name them with
  ``MQA_REPRO_COORDINATOR=host:port``, ``MQA_REPRO_NUM_PROCESSES`` and ``MQA_REPRO_PROCESS_ID``.
  """
  env = os.environ
  wanted = env.get('MQA_REPRO_DISTRIBUTED', '') == '1' or 'JAX_COORDINATOR_ADDRESS' in env
  if not wanted or jax.distributed.is_initialized():
    return
  if env.get('MQA_REPRO_COORDINATOR'):
    missing = [k for k in ('MQA_REPRO_NUM_PROCESSES', 'MQA_REPRO_PROCESS_ID') if k not in env]
    if missing:
      raise ValueError(f'MQA_REPRO_COORDINATOR is set but {missing} are not')
    jax.distributed.initialize(env['MQA_REPRO_COORDINATOR'], int(env['MQA_REPRO_NUM_PROCESSES']),
                               int(env['MQA_REPRO_PROCESS_ID']))
  else:
    jax.distributed.initialize()
  log(f'process {jax.process_index()} of {jax.process_count()}: '
      f'{jax.local_device_count()} local / {jax.device_count()} global devices')


def mesh_shape(mesh_config: ml_collections.ConfigDict, num_devices: int) -> dict[str, int]:
  """Resolve -1 (all remaining devices) and check the product equals the device count."""
  shape = {axis: int(mesh_config[axis]) for axis in AXES}
  free = [axis for axis, n in shape.items() if n == -1]
  if len(free) > 1:
    raise ValueError(f"at most one of config.mesh.{{data,fsdp,model}} may be -1, got {shape}")
  for axis, n in shape.items():
    if n == 0 or n < -1:
      raise ValueError(f"config.mesh.{axis} must be a positive size or -1, got {n}")
  fixed = int(np.prod([n for n in shape.values() if n != -1]))
  if free:
    if num_devices % fixed:
      raise ValueError(f"config.mesh: {num_devices} devices cannot be split into data/fsdp/model = "
                       f"{shape}: {fixed} does not divide {num_devices}. Change config.mesh.* so the "
                       f"fixed axes divide the device count")
    shape[free[0]] = num_devices // fixed
  if int(np.prod(list(shape.values()))) != num_devices:
    raise ValueError(f"config.mesh {shape} needs {int(np.prod(list(shape.values())))} devices but "
                     f"{num_devices} are present; set one axis to -1 or change the sizes")
  return shape


def mesh_context(mesh: Mesh, rules) -> contextlib.ExitStack:
  """Mesh + logical-axis rules active while tracing, so activation constraints resolve."""
  stack = contextlib.ExitStack()
  set_mesh = getattr(jax, 'set_mesh', None)  # jax >= 0.7; older versions use the Mesh itself
  stack.enter_context(set_mesh(mesh) if set_mesh else mesh)
  stack.enter_context(nn.logical_axis_rules(rules))
  return stack


def make_mesh(mesh_config: ml_collections.ConfigDict, devices: Sequence[Any] | None = None) -> Mesh:
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(mesh_config, len(devices))
  grid = np.asarray(devices).reshape([shape[a] for a in AXES])
  return Mesh(grid, AXES)


def resolve_rules(config: ml_collections.ConfigDict, mesh: Mesh,
                  log: Callable[[str], None] = print) -> tuple[tuple[str, Any], ...]:
  """The config's rules, checked against the model and the mesh; kv heads replicated if needed."""
  m, sizes = config.model, dict(mesh.shape)
  rules = dict((name, axes) for name, axes in config.mesh.rules)

  def size_of(axes):
    axes = (axes,) if isinstance(axes, str) else (axes or ())
    return int(np.prod([sizes[a] for a in axes])) if axes else 1

  def need(logical: str, dim: int, field: str):
    n = size_of(rules.get(logical))
    if dim % n:
      raise ValueError(f"{field} = {dim} is not divisible by the {n}-way mesh split of "
                       f"'{logical}' (rules map it to {rules.get(logical)!r}, mesh {sizes}); change "
                       f"config.mesh or the rule for '{logical}'")

  need('heads', m.num_heads, 'config.model.num_heads')
  need('mlp', m.d_ff, 'config.model.d_ff')
  need('vocab', m.vocab_size, 'config.model.vocab_size')
  need('embed', m.d_model, 'config.model.d_model')
  need('batch', config.data.batch_size, 'config.data.batch_size')
  kv_split = size_of(rules.get('kv_heads'))
  if m.num_kv_heads % kv_split:
    log(f"sharding: {m.num_kv_heads} kv head(s) cannot be split {kv_split} ways over "
        f"{rules['kv_heads']!r}; replicating K/V projections and caches across it instead")
    rules['kv_heads'] = None
  return tuple(rules.items())


def logical_shardings(abstract_boxed: Any, mesh: Mesh, rules) -> Any:
  """NamedShardings for a pytree whose leaves carry flax logical-axis metadata."""
  specs = nn.get_partition_spec(abstract_boxed)
  return nn.logical_to_mesh_sharding(specs, mesh, rules)


def state_shardings(abstract_state: Any, params_abstract: Any, params_shardings: Any,
                    mesh: Mesh) -> Any:
  """Shardings for a train state: params as given; optimizer slots like their parameter when they
  have its shape, replicated otherwise (Adafactor's factored row/column statistics are tiny)."""
  replicated = NamedSharding(mesh, P())
  treedef = jax.tree_util.tree_structure(params_abstract)

  def like_params(node):
    return jax.tree_util.tree_map(
        lambda leaf, p, s: s if getattr(leaf, 'shape', None) == p.shape else replicated,
        node, params_abstract, params_shardings)

  def visit(node):
    if jax.tree_util.tree_structure(node) == treedef:
      return like_params(node)
    return replicated

  return jax.tree_util.tree_map(visit, abstract_state,
                                is_leaf=lambda n: jax.tree_util.tree_structure(n) == treedef)


def batch_sharding(mesh: Mesh, rules) -> NamedSharding:
  """[B, L] batches: rows split like the logical 'batch' axis, length unsplit."""
  return NamedSharding(mesh, nn.logical_to_mesh_axes(('batch', 'length'), rules))


def rows_sharding(mesh: Mesh, rules, shape: Sequence[int]) -> NamedSharding:
  """An array whose first axis is rows (a batch of any rank): rows split like the logical 'batch'
  axis when they divide evenly, else replicated (a last, short batch of an eval set)."""
  spec = nn.logical_to_mesh_axes(('batch',) + (None,) * (len(shape) - 1), rules)
  axes = spec[0] if len(spec) else None
  names = (axes,) if isinstance(axes, str) else tuple(axes or ())
  split = int(np.prod([mesh.shape[a] for a in names])) if names else 1
  return NamedSharding(mesh, spec if shape and shape[0] % split == 0 else P())


def global_batch(local: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """This host's rows -> one global array per key (each host feeds its share of the batch)."""
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def describe(shardings: Any) -> dict[str, str]:
  """{'decoder_0/self_attn/key': "PartitionSpec('fsdp', None, None)", ...} for model_info.json."""
  flat = jax.tree_util.tree_flatten_with_path(shardings)[0]
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): str(s.spec) for path, s in flat}
