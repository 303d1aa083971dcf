"""What `eval.py` computes for a trained state: metrics JSON plus figures in `<workdir>/eval/`.

- `rec_mse`: mean squared error per pixel of test reconstructions, [-1, 1] units
  (methods with `reconstruct`);
- for 2-D data, `density_tv` / `density_kl`: total variation / KL(true ‖ model)
  between the normalised model density exp(−E)/Z on a grid and the true
  density (methods with `energy`), and `sample_tv`: the same TV for a
  histogram of generator samples, beside `sample_tv_floor`, the TV between two
  independent true-sample histograms of the same size (the best achievable);
- figures: `samples.png`, `reconstructions.png` (test images above their
  reconstructions), for 2-D data `density.png` (model density with samples) and
  `true_density.png`.
"""
import json
import os

import jax
import numpy as np

from egm import data
from egm.checkpointing import Checkpointer
from egm.errors import EgmError
from egm.evaluation import density, images, long_run


def reconstruction_mse(method, state, source, eval_config) -> tuple[float, np.ndarray, np.ndarray]:
  """Mean squared error per pixel over the test split; also the first batch and its reconstruction."""
  reconstruct = jax.jit(method.reconstruct)
  total, count, first = 0.0, 0, None
  for batch in data.eval_batches(source, batch_size=eval_config.batch_size,
                                 max_examples=eval_config.max_test_examples):
    x_rec = np.asarray(reconstruct(state, {'x': batch['x']}))
    total += float(np.sum(np.square(batch['x'] - x_rec)))
    count += batch['x'].size
    if first is None:
      first = (batch['x'], x_rec)
  return total / count, first[0], first[1]


def sample_tv(samples: np.ndarray, toy_name: str, eval_config) -> float:
  """TV between a histogram of 2-D samples (n, 2) and the true density, on the coarse grid."""
  extent, coarse = eval_config.grid_extent, eval_config.sample_grid_size
  sampler = lambda rng, n: data.sample_toy2d(toy_name, rng, n)
  return density.total_variation(density.histogram_density(samples, extent, coarse),
                                 density.true_density(sampler, extent, coarse))


def density_metrics(method, state, toy_name: str, eval_config, key, out_dir: str) -> dict:
  """density_tv/kl of exp(−E) and sample_tv of generator samples against the true 2-D density."""
  extent = eval_config.grid_extent
  sampler = lambda rng, n: data.sample_toy2d(toy_name, rng, n)
  results = {}
  true_fine = density.true_density(sampler, extent, eval_config.grid_size)
  images.save_points_png(os.path.join(out_dir, 'true_density.png'),
                         sampler(np.random.default_rng(7), 2000), extent, background_density=true_fine)
  samples = None
  if hasattr(method, 'sample'):
    samples = np.asarray(jax.jit(method.sample, static_argnums=2)(
        state, key, eval_config.num_tv_samples))
    results['sample_tv'] = sample_tv(samples, toy_name, eval_config)
    n, coarse = eval_config.num_tv_samples, eval_config.sample_grid_size
    floor_a, floor_b = (density.histogram_density(sampler(np.random.default_rng(s), n), extent, coarse)
                        for s in (11, 12))
    results['sample_tv_floor'] = density.total_variation(floor_a, floor_b)
  if hasattr(method, 'energy'):
    energies = density.energy_on_grid(lambda x: method.energy(state, x), extent,
                                      eval_config.grid_size)
    model = density.density_from_energy(energies, 1.0)
    results['density_tv'] = density.total_variation(model, true_fine)
    results['density_kl'] = density.kl_divergence(true_fine, model)
    shown = samples[:2000] if samples is not None else np.zeros((0, 2), np.float32)
    if len(shown):
      images.save_points_png(os.path.join(out_dir, 'density.png'), shown, extent,
                             background_density=model)
  return results


def evaluate_state(exp, state, out_dir: str) -> dict:
  """All metrics and figures that apply to `exp`'s method and data; returns the metrics."""
  os.makedirs(out_dir, exist_ok=True)
  cfg = exp.config.eval
  key = jax.random.fold_in(jax.random.key(exp.config.seed), 2 ** 30)
  results = {}
  if exp.dataset.kind == 'points':
    results.update(density_metrics(exp.method, state, exp.dataset.toy2d, cfg, key, out_dir))
  else:
    samples = jax.jit(exp.method.sample, static_argnums=2)(state, key, cfg.num_samples)
    images.save_image_grid(os.path.join(out_dir, 'samples.png'), np.asarray(samples))
  if hasattr(exp.method, 'long_run') and cfg.long_run_factor > 0:
    points_tv = lambda x: sample_tv(x, exp.dataset.toy2d, cfg)
    results.update(long_run.diagnostics(exp, state, jax.random.fold_in(key, 1), out_dir, points_tv))
  if hasattr(exp.method, 'reconstruct') and exp.dataset.test is not None:
    mse, x, x_rec = reconstruction_mse(exp.method, state, exp.dataset.test, cfg)
    results['rec_mse'] = mse
    if exp.dataset.kind == 'image':
      shown = min(len(x), 16)
      images.save_image_grid(os.path.join(out_dir, 'reconstructions.png'),
                             np.concatenate([x[:shown], x_rec[:shown]]), ncols=shown)
  return results


def _flatten(tree: dict, prefix: str = '') -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def warn_if_config_differs(config, workdir: str) -> None:
  """Prints the keys (but `eval.*`, `train.*`) where `config` differs from the run's config.json."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return
  with open(path) as f:
    trained = _flatten(json.load(f))
  given = _flatten(json.loads(json.dumps(config.to_dict())))
  differs = sorted(k for k in set(trained) & set(given)
                   if not k.startswith(('eval.', 'train.')) and trained[k] != given[k])
  if differs:
    shown = ', '.join(f'{k}: trained {trained[k]!r}, now {given[k]!r}' for k in differs[:6])
    print(f'warning: the config differs from the one the run was trained with ({path}): {shown}. '
          'Pass the same --config overrides to eval.py as to train.py.', flush=True)


def evaluate(config, workdir: str) -> dict:
  """Restores the newest checkpoint in `workdir`, evaluates it, writes `eval/metrics.json`."""
  from egm import experiment
  checkpoints = Checkpointer(workdir, config.train.keep_checkpoints)
  step = checkpoints.latest_step()
  if step is None:
    raise EgmError(
        f'No checkpoint in {checkpoints.directory}: train first with '
        f'`python train.py --config <config> --workdir {workdir}`, or point --workdir at a run.')
  warn_if_config_differs(config, workdir)
  exp = experiment.build(config)
  state = checkpoints.restore(exp.init_state())
  checkpoints.close()
  out_dir = os.path.join(workdir, 'eval')
  results = {'step': int(step), 'dataset': exp.dataset.name, 'method': config.method,
             **evaluate_state(exp, state, out_dir)}
  with open(os.path.join(out_dir, 'metrics.json'), 'w') as f:
    json.dump(results, f, indent=2)
  print(json.dumps(results, indent=2), flush=True)
  return results
