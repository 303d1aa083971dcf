"""Everything a config names, built once: data, mesh, method, jitted steps (used by train and
eval); the run directory's config.json, written after checking the workdir belongs to this run."""
import dataclasses
import json
import os

import jax
import numpy as np
from flax import traverse_util

from egm import data
from egm.config import defaults
from egm.errors import EgmError, first_few
from egm.methods import DataSpec, make_method
from egm.methods.contract import registered_methods
from egm.run import parallel, phases, write_errors


@dataclasses.dataclass
class Experiment:
  """The resolved pieces of a run. `dataset` is None for a run opened without its data
  (`build(config, spec=...)`); `method` is bound to one training phase (`at_phase`)."""
  config: object
  dataset: data.Dataset | None
  mesh: jax.sharding.Mesh
  method: object
  data_spec: DataSpec

  def example_batch(self) -> dict:
    """A few training examples with their indices (zeros without the data), for shapes at
    init."""
    if self.dataset is None:
      return {'x': np.zeros((2, *self.data_spec.x_shape), np.float32),
              'label': np.zeros((2,), np.int32), 'index': np.arange(2, dtype=np.int32)}
    return {**self.dataset.train.get(np.arange(2)), 'index': np.arange(2, dtype=np.int32)}

  def state_shardings(self, state_shapes):
    """Shardings of a state pytree: `per_example` rows on `data`, the rest replicated."""
    return parallel.state_shardings(state_shapes, self.mesh)

  def init_state(self):
    """The method's initial state (that of phase 0) on the mesh (per-example state sharded
    on `data`)."""
    key, example = run_keys(self.config.seed)['init'], self.example_batch()
    shapes = jax.eval_shape(self.method.init, key, example)
    init = jax.jit(self.method.init, out_shardings=self.state_shardings(shapes))
    return init(key, example)

  def parameter_counts(self) -> dict:
    """{network: number of parameters} of the initial state (computed from shapes alone)."""
    shapes = jax.eval_shape(self.method.init, run_keys(self.config.seed)['init'],
                            self.example_batch())
    return {name: sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(net['params']))
            for name, net in shapes.items() if isinstance(net, dict) and 'params' in net}

  def schedule(self) -> phases.Schedule:
    """The method's training phases for `train.num_steps`, resolved."""
    config = self.config
    return phases.schedule(self.method.phases(config.train.num_steps), config.train.num_steps,
                           config.train.batch_size, config.data.image_size)

  def phase_of_state(self, step: int) -> int:
    """The phase a state after `step` updates (a checkpoint of `step`) belongs to."""
    return self.schedule().index(step - 1) if step else 0

  def at_phase(self, phase_index: int) -> 'Experiment':
    """This experiment with its method bound to phase `phase_index` (`Method.at_phase`)."""
    return dataclasses.replace(self, method=self.method.at_phase(phase_index))

  def enter_key(self, phase_index: int):
    """The key of the transition into phase `phase_index`."""
    return jax.random.fold_in(run_keys(self.config.seed)['init'], phase_index)

  def state_template(self, phase_index: int):
    """The abstract state of phase `phase_index` (shapes, dtypes and shardings, no values):
    the initial state carried through the method's transitions; what a checkpoint written
    in that phase restores into."""
    key, example = run_keys(self.config.seed)['init'], self.example_batch()

    def state():
      s = self.method.init(key, example)
      for i in range(1, phase_index + 1):
        s = self.method.enter_phase(s, i, self.enter_key(i))
      return s

    shapes = jax.eval_shape(state)
    return jax.tree.map(lambda s, sharding: jax.ShapeDtypeStruct(s.shape, s.dtype,
                                                                 sharding=sharding),
                        shapes, self.state_shardings(shapes))


def run_keys(seed: int) -> dict:
  """The run's three root keys: `init` (parameters), `train` (folded with the step), `sample`."""
  init, train, sample = jax.random.split(jax.random.key(seed), 3)
  return {'init': init, 'train': train, 'sample': sample}


DATA_SPEC_FILE = 'data_spec.json'


def build(config, spec: DataSpec | None = None) -> Experiment:
  """Loads the data set and builds the mesh and the method named by `config`; with `spec`
  (what a trained run wrote, `read_data_spec`), builds them without the data."""
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.train.batch_size, mesh)
  dataset = None
  if spec is None:
    dataset = data.load_dataset(config.data)
    spec = DataSpec(x_shape=tuple(dataset.train.get(np.arange(1))['x'].shape[1:]),
                    num_examples=len(dataset.train), global_batch=config.train.batch_size,
                    steps_per_epoch=max(1, len(dataset.train) // config.train.batch_size))
  return Experiment(config, dataset, mesh, make_method(config, spec), spec)


def write_data_spec(spec: DataSpec, workdir: str) -> None:
  """Writes `<workdir>/data_spec.json` (atomically), so the run opens without its data."""
  path = os.path.join(workdir, DATA_SPEC_FILE)
  with open(path + '.tmp', 'w') as f:
    json.dump(dataclasses.asdict(spec), f)
  os.replace(path + '.tmp', path)


def read_data_spec(workdir: str) -> DataSpec | None:
  """The DataSpec a run wrote in `workdir`, or None (a run trained before egm wrote it)."""
  path = os.path.join(workdir, DATA_SPEC_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    saved = json.load(f)
  return DataSpec(tuple(saved['x_shape']), saved['num_examples'], saved['global_batch'],
                  saved['steps_per_epoch'])


# Keys a rerun in a workdir may change: how long it trains, how often it logs, samples and
# checkpoints, where the data is read from, the divergence guard's policy and limits (a run
# stopped by the guard resumes with `guard.policy=rollback`), and evaluation. Any other key
# changes the model, its data or its trajectory, so a workdir holding checkpoints refuses it.
# Keys ending in '.' are prefixes.
RESUMABLE_KEYS = ('train.num_steps', 'train.max_minutes', 'train.log_every',
                  'train.log_seconds', 'train.checkpoint_every', 'train.sample_every',
                  'train.keep_checkpoints', 'data.prefetch', 'data.data_dir', 'guard.', 'eval.')


def config_differences(saved: dict, config) -> list[str]:
  """'key: run A, now B' for each key the run uses where `config` differs from a run's saved
  config (a config.json dict; keys added since take their defaults): the shared sections and
  the run's own method section, outside RESUMABLE_KEYS. Other methods' sections are not the
  run's, so changing their defaults never refuses a resume."""
  def flat(c):
    return traverse_util.flatten_dict(json.loads(json.dumps(c.to_dict())), sep='.')
  others = set(registered_methods()) - {config.method}
  run, now = flat(defaults.with_defaults(saved)), flat(config)
  return [f'{key}: run {run.get(key, "absent")!r}, now {value!r}'
          for key, value in sorted(now.items())
          if run.get(key) != value and not key.startswith(RESUMABLE_KEYS)
          and key.split('.')[0] not in others]


def check_workdir_config(config, workdir: str) -> None:
  """Raises EgmError when `workdir` holds checkpoints of a run with another config (its
  config.json differs from `config` outside RESUMABLE_KEYS), naming the keys that differ."""
  path = os.path.join(workdir, 'config.json')
  checkpoints = os.path.join(workdir, 'checkpoints')
  if not (os.path.exists(path) and os.path.isdir(checkpoints)
          and any(name.isdigit() for name in os.listdir(checkpoints))):
    return
  try:
    with open(path) as f:
      saved = json.load(f)
  except ValueError as e:
    raise EgmError(f'{path} is not valid JSON ({e}), so the run in --workdir={workdir} cannot '
                   'be checked against this config. Restore the file, or train in a new '
                   '--workdir.') from e
  differences = config_differences(saved, config)
  if differences:
    shown = first_few(differences, 8)
    raise EgmError(
        f'--workdir={workdir} holds the checkpoints of a run with another config ({path}): '
        f'{shown}. Resuming would mix two runs. Train in a new --workdir, or pass the values '
        f'of the run\'s config.json; between runs of one workdir only '
        f'{", ".join(k.rstrip(".") + ("*" if k.endswith(".") else "") for k in RESUMABLE_KEYS)} '
        'may change.')


def write_config(config, workdir: str) -> None:
  """Writes the resolved config as `<workdir>/config.json` (atomically: a kill leaves the old
  file or the new one), after `check_workdir_config`; an unwritable workdir is an EgmError."""
  path = os.path.join(workdir, 'config.json')
  try:
    os.makedirs(workdir, exist_ok=True)
    check_workdir_config(config, workdir)
    with open(path + '.tmp', 'w') as f:
      json.dump(config.to_dict(), f, indent=2, sort_keys=True)
    os.replace(path + '.tmp', path)
  except OSError as e:
    cause, fix = write_errors.cause_and_fix(e)
    raise EgmError(f'Cannot write to --workdir={workdir}: {cause} ({e.strerror or e}). '
                   f'Fix: {fix}.') from e
