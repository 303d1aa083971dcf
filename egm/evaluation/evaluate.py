"""What `eval.py` computes for a trained state: metrics JSON plus figures in `<workdir>/eval/`.

The metrics and figures are those of the registry (egm/evaluation/registry.py, the metrics in
egm/evaluation/metrics/) that apply to the method and data, or those `config.eval.metrics` names.
"""
import json
import os

import jax

from egm.evaluation import images
from egm.evaluation.context import EvalContext
from egm.evaluation.registry import run_metrics
from egm.run import workdir as workdir_lib


def evaluate_state(exp, state, out_dir: str) -> dict:
  """All metrics and figures that apply to `exp`'s method and data; returns the metrics."""
  os.makedirs(out_dir, exist_ok=True)
  key = jax.random.fold_in(jax.random.key(exp.config.seed), 2 ** 30)
  return run_metrics(EvalContext(exp, state, out_dir, key))


def evaluate(config, workdir: str) -> dict:
  """Restores a checkpoint in `workdir` (in the phase it was written in), evaluates it, writes
  `eval/metrics.json`. The checkpoint is the newest, or the one of step
  `config.eval.checkpoint_step` if not 0."""
  workdir_lib.warn_if_config_differs(config, workdir)
  run = workdir_lib.restore(config, workdir, config.eval.checkpoint_step or None)
  exp, step = run.experiment, run.step
  out_dir = os.path.join(workdir, 'eval')
  with images.figure_label(f'{config.method} on {exp.dataset.name}, step {step}'):
    metrics = evaluate_state(exp, run.state, out_dir)
  results = {'step': step, 'dataset': exp.dataset.name, 'method': config.method, **metrics}
  with open(os.path.join(out_dir, 'metrics.json'), 'w') as f:
    json.dump(results, f, indent=2)
  print(json.dumps(results, indent=2), flush=True)
  written = sorted(os.listdir(out_dir))
  print(f'wrote {len(written)} files to {out_dir}: {", ".join(written)}', flush=True)
  return results
