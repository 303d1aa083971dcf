"""Opening a trained run's workdir: its config, its newest (or a chosen) checkpoint restored
into the state of the phase it was written in, and the method bound to that phase.

    run = egm.open_run('runs/tri')          # or open_run(workdir, step=2000, overrides={...})
    x = run.method.sample(run.state, jax.random.key(0), 16)

eval.py, studies and users' scripts all open runs this way.
"""
import dataclasses
import json
import os

from egm.config import defaults
from egm.errors import EgmError
from egm.run import experiment
from egm.run.checkpointing import Checkpointer

CONFIG_FILE = 'config.json'


@dataclasses.dataclass
class Run:
  """An opened run.

  Attributes:
    workdir: the run directory.
    experiment: its Experiment (config, data when loaded, mesh), the method bound to `phase`.
    state: the restored state (sharded on the mesh as in training).
    step: the step of the checkpoint restored.
    phase: the index of the training phase the checkpoint was written in.
  """
  workdir: str
  experiment: experiment.Experiment
  state: object
  step: int
  phase: int

  @property
  def config(self):
    return self.experiment.config

  @property
  def method(self):
    """The method in the checkpoint's phase: its capabilities take `state`."""
    return self.experiment.method


def saved_config(workdir: str):
  """The run's config.json over today's defaults (keys added since take their defaults)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise EgmError(f'{workdir} holds no {CONFIG_FILE} (no run was trained there): point at a '
                   'run directory, or pass the config with --config=configs/NAME.py.')
  with open(path) as f:
    return defaults.with_defaults(json.load(f))


def _flatten(tree: dict, prefix: str = '') -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def warn_if_config_differs(config, workdir: str, using_saved: bool = False) -> None:
  """Prints the keys (but `eval.*`, `train.*`) where `config` differs from the run's config.json.

  `using_saved`: the run's own config is what will be used (eval.py), so say that instead.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    trained = _flatten(json.load(f))
  given = _flatten(json.loads(json.dumps(config.to_dict())))
  differs = sorted(k for k in set(trained) & set(given)
                   if not k.startswith(('eval.', 'train.')) and trained[k] != given[k])
  if differs and using_saved:
    shown = ', '.join(f'{k}: trained {trained[k]!r}, file {given[k]!r}' for k in differs[:6])
    print(f'note: evaluating with the run\'s own config ({path}); the --config file differs in '
          f'{shown}. Override a key with --config.<key>=<value>.', flush=True)
  elif differs:
    shown = ', '.join(f'{k}: trained {trained[k]!r}, now {given[k]!r}' for k in differs[:6])
    print(f'warning: the config differs from the one the run was trained with ({path}): {shown}. '
          'Pass the same --config overrides to eval.py as to train.py.', flush=True)


def run_config(workdir: str, given=None, overrides=None):
  """The config a run is opened with: its own `config.json` (over the defaults of keys added
  since), with `overrides` ({dotted key: value}) on top. Without a config.json, `given`
  (a config file's)."""
  if not os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    if given is None:
      saved_config(workdir)  # raises, naming the fix
    return given
  config = saved_config(workdir)
  if given is not None:
    warn_if_config_differs(given, workdir, using_saved=True)
  for key, value in (overrides or {}).items():
    *parents, leaf = key.split('.')
    section = config
    for part in parents:
      section = section[part]
    section[leaf] = value
  return config


def _no_checkpoint(workdir: str) -> EgmError:
  return EgmError(
      f'No checkpoint in {os.path.abspath(workdir)}: train first with '
      f'`python train.py --config <config> --workdir {workdir}`, or point --workdir at a run.')


def restore(config, workdir: str, step: int | None = None, spec=None) -> Run:
  """The run in `workdir` under `config`: the checkpoint of `step` (None: the newest)
  restored into the state of its phase. With `spec` (a DataSpec, e.g. the one the run wrote,
  `experiment.read_data_spec`) the data set is not read: the capabilities work, the data
  (`run.experiment.dataset`) is None."""
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise _no_checkpoint(workdir)
  checkpoints = Checkpointer(workdir, config.train.keep_checkpoints)
  try:
    kept = checkpoints.all_steps()
    if not kept:
      raise _no_checkpoint(workdir)
    if step is None:
      step = kept[-1]
    elif step not in kept:
      raise EgmError(f'No checkpoint of step {step} (config.eval.checkpoint_step={step}) in '
                     f'{checkpoints.directory}; it holds steps {kept} (0 means the newest).')
    exp = experiment.build(config, spec)
    phase = exp.phase_of_state(step)
    exp = exp.at_phase(phase)
    state = checkpoints.restore(exp.state_template(phase), step)
  finally:
    checkpoints.close()
  return Run(os.path.abspath(workdir), exp, state, int(step), phase)


def open_run(workdir: str, step: int | None = None, overrides: dict | None = None,
             load_data: bool = True) -> Run:
  """Opens the trained run in `workdir`: its config.json (with `overrides`, {dotted key:
  value}), the checkpoint of `step` (None: the newest) in the phase it was written in, the
  method bound to that phase. `load_data=False` skips reading the data set where the run
  wrote its data spec (`data_spec.json`, as every run trained by this version does)."""
  spec = None if load_data else experiment.read_data_spec(workdir)
  return restore(run_config(workdir, overrides=overrides), workdir, step, spec)
