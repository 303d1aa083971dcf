"""The device mesh: batch sharded on axis `data`, everything else replicated (DESIGN.md §4).

The same code serves one CPU, 8 forced CPU devices, a GPU and a multi-host TPU
pod: each process feeds its own rows, and `global_batch` assembles the global
array that the jitted update step sees.
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from egm.errors import EgmError

DATA_AXIS = 'data'


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh, axis name `data`, over `devices` (default: all devices of all processes)."""
  if devices is None:
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                         axis_types=(jax.sharding.AxisType.Auto,))
  return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Shards axis 0 (the batch) over the `data` axis."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """The same value on every device."""
  return NamedSharding(mesh, PartitionSpec())


def state_shardings(state, mesh: Mesh):
  """A sharding per leaf of a method state: arrays under `per_example` are sharded on `data`
  along axis 0 (their rows), everything else is replicated."""
  from egm.methods.contract import PER_EXAMPLE

  def sharding(path, leaf):
    del leaf
    top = getattr(path[0], 'key', None) if path else None
    return data_sharding(mesh) if top == PER_EXAMPLE else replicated(mesh)
  return jax.tree_util.tree_map_with_path(sharding, state)


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
  """Raises EgmError unless the global batch splits evenly over devices and processes."""
  devices = mesh.devices.size
  if global_batch_size % devices or global_batch_size % jax.process_count():
    raise EgmError(
        f'The global batch size {global_batch_size} does not divide by the {devices} devices '
        f'({jax.process_count()} processes) the batch is sharded over. Set '
        f'--config.train.batch_size to a multiple of {devices}, e.g. '
        f'{max(devices, global_batch_size // devices * devices)}.')


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
  """Process-local numpy rows -> global arrays sharded over `data` on axis 0."""
  sharding = data_sharding(mesh)
  return {name: jax.make_array_from_process_local_data(sharding, np.asarray(value))
          for name, value in local_batch.items()}


def replicate(tree, mesh: Mesh):
  """Places a pytree (e.g. the train key) on every device of the mesh, once.

  A jitted identity with a replicated output sharding: unlike `jax.device_put`, it
  also works when the mesh spans devices of other processes (each process passes the
  same value).
  """
  return jax.jit(lambda t: t, out_shardings=replicated(mesh))(tree)
