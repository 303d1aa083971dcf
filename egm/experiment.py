"""Everything a config names, built once: data, mesh, method, jitted steps (used by train and eval)."""
import dataclasses
import json
import os

import jax
import numpy as np

from egm import data, parallel
from egm.methods import DataSpec, make_method


@dataclasses.dataclass
class Experiment:
  """The resolved pieces of a run."""
  config: object
  dataset: data.Dataset
  mesh: jax.sharding.Mesh
  method: object
  data_spec: DataSpec

  def example_batch(self) -> dict:
    """A few training examples with their indices, for shapes at init."""
    return {**self.dataset.train.get(np.arange(2)), 'index': np.arange(2, dtype=np.int32)}

  def state_shardings(self, state_shapes):
    """Shardings of a state pytree: `per_example` rows on `data`, the rest replicated."""
    return parallel.state_shardings(state_shapes, self.mesh)

  def init_state(self):
    """The method's initial state on the mesh (per-example state sharded on `data`)."""
    key, example = run_keys(self.config.seed)['init'], self.example_batch()
    shapes = jax.eval_shape(self.method.init, key, example)
    init = jax.jit(self.method.init, out_shardings=self.state_shardings(shapes))
    return init(key, example)


def run_keys(seed: int) -> dict:
  """The run's three root keys: `init` (parameters), `train` (folded with the step), `sample`."""
  init, train, sample = jax.random.split(jax.random.key(seed), 3)
  return {'init': init, 'train': train, 'sample': sample}


def build(config) -> Experiment:
  """Loads the data set and builds the mesh and the method named by `config`."""
  dataset = data.load_dataset(config.data)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.train.batch_size, mesh)
  spec = DataSpec(x_shape=tuple(dataset.train.get(np.arange(1))['x'].shape[1:]),
                  num_examples=len(dataset.train), global_batch=config.train.batch_size,
                  steps_per_epoch=max(1, len(dataset.train) // config.train.batch_size))
  return Experiment(config, dataset, mesh, make_method(config, spec), spec)


def write_config(config, workdir: str) -> None:
  """Writes the resolved config as `<workdir>/config.json`."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump(config.to_dict(), f, indent=2, sort_keys=True)
