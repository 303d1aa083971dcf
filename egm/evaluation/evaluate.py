"""What `eval.py` computes for a trained state: metrics JSON plus figures in `<workdir>/eval/`.

The metrics and figures are those of the registry (egm/evaluation/registry.py, the metrics in
egm/evaluation/metrics/) that apply to the method and data, or those `config.eval.metrics` names.
"""
import json
import os

import jax

from egm.config import defaults
from egm.run.checkpointing import Checkpointer
from egm.errors import EgmError
from egm.evaluation import images
from egm.evaluation.context import EvalContext
from egm.evaluation.registry import run_metrics


def evaluate_state(exp, state, out_dir: str) -> dict:
  """All metrics and figures that apply to `exp`'s method and data; returns the metrics."""
  os.makedirs(out_dir, exist_ok=True)
  key = jax.random.fold_in(jax.random.key(exp.config.seed), 2 ** 30)
  return run_metrics(EvalContext(exp, state, out_dir, key))


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
  path = os.path.join(workdir, 'config.json')
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
  """The config eval.py evaluates `workdir` with: the run's own `config.json` (over the
  defaults of keys added since), with the command line's `--config.<key>=<value>` overrides
  on top. Without a config.json, the given config file's (`given`)."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    if given is None:
      raise EgmError(f'{workdir} holds no config.json (no run was trained there): pass the '
                     'config with --config=configs/NAME.py, or point --workdir at a run.')
    return given
  with open(path) as f:
    config = defaults.with_defaults(json.load(f))
  if given is not None:
    warn_if_config_differs(given, workdir, using_saved=True)
  for key, value in (overrides or {}).items():
    *parents, leaf = key.split('.')
    section = config
    for part in parents:
      section = section[part]
    section[leaf] = value
  return config


def evaluate(config, workdir: str) -> dict:
  """Restores a checkpoint in `workdir`, evaluates it, writes `eval/metrics.json`.

  The checkpoint is the newest, or the one of step `config.eval.checkpoint_step` if not 0.
  """
  from egm.run import experiment
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise EgmError(
        f'No checkpoint in {os.path.abspath(workdir)}: train first with '
        f'`python train.py --config <config> --workdir {workdir}`, or point --workdir at a run.')
  checkpoints = Checkpointer(workdir, config.train.keep_checkpoints)
  step = checkpoints.latest_step()
  if step is None:
    checkpoints.close()
    raise EgmError(
        f'No checkpoint in {checkpoints.directory}: train first with '
        f'`python train.py --config <config> --workdir {workdir}`, or point --workdir at a run.')
  if config.eval.checkpoint_step:
    step, kept = config.eval.checkpoint_step, checkpoints.all_steps()
    if step not in kept:
      raise EgmError(
          f'config.eval.checkpoint_step={step}: no such checkpoint in {checkpoints.directory}; '
          f'it holds steps {kept} (0 means the newest).')
  warn_if_config_differs(config, workdir)
  exp = experiment.build(config)
  state = checkpoints.restore(exp.init_state(), step)
  checkpoints.close()
  out_dir = os.path.join(workdir, 'eval')
  with images.figure_label(f'{config.method} on {exp.dataset.name}, step {int(step)}'):
    metrics = evaluate_state(exp, state, out_dir)
  results = {'step': int(step), 'dataset': exp.dataset.name, 'method': config.method, **metrics}
  with open(os.path.join(out_dir, 'metrics.json'), 'w') as f:
    json.dump(results, f, indent=2)
  print(json.dumps(results, indent=2), flush=True)
  written = sorted(os.listdir(out_dir))
  print(f'wrote {len(written)} files to {out_dir}: {", ".join(written)}', flush=True)
  return results
