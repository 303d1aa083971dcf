"""What `eval.py` computes for a trained state: metrics JSON plus figures in `<workdir>/eval/`.

The metrics and figures are those of the registry (egm/evaluation/registry.py, the metrics in
egm/evaluation/metrics/) that apply to the method and data, or those `config.eval.metrics` names
(`run_metrics`).
"""
import json
import os

import jax

from egm.errors import EgmError
from egm.figures import images
from egm.evaluation import metrics as _metrics  # noqa: F401  (registers the built-in metrics)
from egm.evaluation.context import EvalContext
from egm.evaluation.registry import METRICS
from egm.run import workdir as workdir_lib


def parse_names(spec) -> tuple[str, ...] | None:
  """'all' -> None; 'a,b' or ('a', 'b') -> ('a', 'b'); unknown names raise EgmError."""
  names = tuple(n.strip() for n in (spec.split(',') if isinstance(spec, str) else spec))
  names = tuple(n for n in names if n)
  if names in ((), ('all',)):
    return None
  unknown = [n for n in names if n not in METRICS]
  if unknown:
    raise EgmError(
        f'Unknown metric(s) {", ".join(unknown)} in config.eval.metrics. Choose from '
        f'{", ".join(METRICS)} (comma-separated), or "all" for every applicable one.')
  return names


def run_metrics(context) -> dict:
  """Runs the metrics `context.config.eval.metrics` names; returns their merged results."""
  names = parse_names(context.config.eval.metrics)
  results = {}
  for metric in METRICS.values():
    if names is not None and metric.name not in names:
      continue
    reason = metric.needs.unmet(context)
    if reason is None:
      results.update(metric.fn(context))
    elif names is not None:
      print(f'note: skipping the metric {metric.name!r} named in config.eval.metrics: {reason}.',
            flush=True)
  return results


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
