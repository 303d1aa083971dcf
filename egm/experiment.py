"""Everything a config names, built once: data, mesh, method, jitted steps (used by train and eval)."""
import dataclasses
import json
import os

import jax
import numpy as np

from egm import data, parallel
from egm.methods import make_method


@dataclasses.dataclass
class Experiment:
  """The resolved pieces of a run."""
  config: object
  dataset: data.Dataset
  mesh: jax.sharding.Mesh
  method: object
  steps_per_epoch: int

  def example_batch(self) -> dict:
    """A few training examples, for shapes at init."""
    return self.dataset.train.get(np.arange(2))

  def init_state(self):
    """The method's initial state, replicated over the mesh."""
    init = jax.jit(self.method.init, out_shardings=parallel.replicated(self.mesh))
    return init(run_keys(self.config.seed)['init'], self.example_batch())


def run_keys(seed: int) -> dict:
  """The run's three root keys: `init` (parameters), `train` (folded with the step), `sample`."""
  init, train, sample = jax.random.split(jax.random.key(seed), 3)
  return {'init': init, 'train': train, 'sample': sample}


def build(config) -> Experiment:
  """Loads the data set and builds the mesh and the method named by `config`."""
  dataset = data.load_dataset(config.data)
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.train.batch_size, mesh)
  steps_per_epoch = max(1, len(dataset.train) // config.train.batch_size)
  x_shape = dataset.train.get(np.arange(1))['x'].shape[1:]
  method = make_method(config, x_shape, steps_per_epoch)
  return Experiment(config, dataset, mesh, method, steps_per_epoch)


def write_config(config, workdir: str) -> None:
  """Writes the resolved config as `<workdir>/config.json`."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump(config.to_dict(), f, indent=2, sort_keys=True)
