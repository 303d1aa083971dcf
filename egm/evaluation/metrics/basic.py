"""Sample grids, reconstruction MSE, 2-D density TV/KL and long-run chain diagnostics.

- `samples`: `samples.png`, a grid of `eval.num_samples` model samples (image data);
- `rec_mse`: mean squared error per pixel of test reconstructions, [-1, 1] units, and
  `reconstructions.png` (test images above their reconstructions);
- `density` (2-D data): `density_tv` / `density_kl`, total variation / KL(true ‖ model)
  between the normalised model density exp(−E)/Z on a grid and the true density (methods
  with `energy`), beside `density_tv_floor`, the sampling error of that true-density
  estimate (2M samples) on the grid: the TV an exact model would score, and below which
  density_tv cannot be expected to go (density.density_tv_floor), and
  `density_tv_untrained`, that of the run's initial energy (a warning is printed when the
  trained energy is further from the truth); `sample_tv`, the same TV
  for a histogram of `eval.num_tv_samples` model samples on the coarse grid, beside
  `sample_tv_floor`, the mean TV between histograms of as many fresh true samples and the
  same true density (what a model sampling the true distribution exactly scores, in
  expectation; density.sample_tv_floor); `density.png` (model density with samples),
  `true_density.png`;
- `long_run`: short-run vs long-run chains of MCMC-trained EBMs (see long_run.py).
"""
import os

import jax
import numpy as np

from egm import data
from egm.evaluation import density, long_run
from egm.evaluation.registry import register_metric
from egm.figures import images
from egm.methods.contract import has_capability


@register_metric('samples', methods=('sample',), kind='image')
def sample_grid(ctx) -> dict:
  samples = np.asarray(ctx.jitted_sample(ctx.state, ctx.key, ctx.config.eval.num_samples))
  images.save_image_grid(os.path.join(ctx.out_dir, 'samples.png'), np.clip(samples, -1, 1))
  return {}


def reconstruction_mse(method, state, source, eval_config,
                       key) -> tuple[float, np.ndarray, np.ndarray]:
  """Per-pixel squared error over the test split; also the first batch and its reconstruction."""
  reconstruct = jax.jit(method.reconstruct)
  total, count, first = 0.0, 0, None
  for i, batch in enumerate(data.eval_batches(source, batch_size=eval_config.batch_size,
                                              max_examples=eval_config.max_test_examples)):
    x_rec = np.asarray(reconstruct(state, {'x': batch['x']}, jax.random.fold_in(key, i)))
    total += float(np.sum(np.square(batch['x'] - x_rec)))
    count += batch['x'].size
    if first is None:
      first = (batch['x'], x_rec)
  return total / count, first[0], first[1]


@register_metric('rec_mse', methods=('reconstruct',), test=True)
def rec_mse(ctx) -> dict:
  mse, x, x_rec = reconstruction_mse(ctx.method, ctx.state, ctx.dataset.test, ctx.config.eval,
                                     jax.random.fold_in(ctx.key, 8))
  if ctx.dataset.kind == 'image':
    shown = min(len(x), 16)
    images.save_image_grid(os.path.join(ctx.out_dir, 'reconstructions.png'),
                           np.concatenate([x[:shown], np.clip(x_rec[:shown], -1, 1)]),
                           ncols=shown)
  return {'rec_mse': mse}


def sample_tv(samples: np.ndarray, toy_name: str, eval_config) -> float:
  """TV between a histogram of 2-D samples (n, 2) and the true density, on the coarse grid."""
  extent, coarse = eval_config.grid_extent, eval_config.sample_grid_size
  sampler = lambda rng, n: data.sample_toy2d(toy_name, rng, n)
  return density.total_variation(density.histogram_density(samples, extent, coarse),
                                 density.true_density(sampler, extent, coarse))


def _toy2d(ctx) -> str:
  return ctx.dataset.toy2d


@register_metric('density', kind='points')
def density_metrics(ctx) -> dict:
  """density_tv/kl of exp(−E/T) and sample_tv of model samples against the true 2-D density.

  T is the temperature the method trains and samples at (`Method.density_temperature`: the
  ebm's σ²/(2s), 1 for the others), reported as `density_temperature`.

  Each TV comes with the floor of the same comparison: what a model equal to the true
  distribution would score against the same estimate of the true density. density_tv_floor
  leaves out the midpoint rule of density_from_energy (exp(−E) at cell centres, not cell
  integrals), which adds O((cell width / feature width)^2) for an exact energy.
  """
  method, cfg, out_dir = ctx.method, ctx.config.eval, ctx.out_dir
  extent = cfg.grid_extent
  sampler = lambda rng, n: data.sample_toy2d(_toy2d(ctx), rng, n)
  results = {}
  true_fine = density.true_density(sampler, extent, cfg.grid_size)
  images.save_points_png(os.path.join(out_dir, 'true_density.png'),
                         sampler(np.random.default_rng(7), 2000), extent,
                         background_density=true_fine)
  samples = None
  if has_capability(method, 'sample'):
    samples = np.asarray(ctx.jitted_sample(ctx.state, ctx.key, cfg.num_tv_samples))
    results['sample_tv'] = sample_tv(samples, _toy2d(ctx), cfg)
    coarse = cfg.sample_grid_size
    true_coarse = density.true_density(sampler, extent, coarse)  # sample_tv's reference
    results['sample_tv_floor'] = density.sample_tv_floor(sampler, true_coarse, extent, coarse,
                                                         cfg.num_tv_samples)
  if has_capability(method, 'energy'):
    temperature = method.density_temperature()
    energies = density.energy_on_grid(lambda x: method.energy(ctx.state, x), extent, cfg.grid_size)
    model = density.density_from_energy(energies / temperature, 1.0)
    results['density_temperature'] = temperature
    results['density_tv'] = density.total_variation(model, true_fine)
    results['density_kl'] = density.kl_divergence(true_fine, model)
    results['density_tv_floor'] = density.density_tv_floor(sampler, true_fine, extent,
                                                           cfg.grid_size)
    results['density_tv_untrained'] = _untrained_density_tv(ctx, true_fine, temperature)
    if results['density_tv'] > results['density_tv_untrained']:
      print(f"warning: exp(−E/T) is further from the true {_toy2d(ctx)} density (density_tv "
            f"{results['density_tv']:.3f}) than the untrained energy's "
            f"({results['density_tv_untrained']:.3f}): this run has not learned the density. "
            "See the table of toy densities in docs/results.md for the methods and densities "
            "where that happens; train longer, lower --config.<method>.optim.energy.lr, "
            "or evaluate an earlier checkpoint.", flush=True)
    shown = samples[:2000] if samples is not None else np.zeros((0, 2), np.float32)
    if len(shown):
      images.save_points_png(os.path.join(out_dir, 'density.png'), shown, extent,
                             background_density=model)
  return results


def _untrained_density_tv(ctx, true_fine, temperature: float) -> float:
  """density_tv of the run's initial energy (same seed, same grid, same T): the baseline."""
  cfg = ctx.config.eval
  initial = ctx.exp.init_state()
  energies = density.energy_on_grid(lambda x: ctx.method.energy(initial, x), cfg.grid_extent,
                                    cfg.grid_size)
  return density.total_variation(density.density_from_energy(energies / temperature, 1.0),
                                 true_fine)


@register_metric('long_run', methods=('long_run',), config=('eval.long_run_factor',))
def long_run_diagnostics(ctx) -> dict:
  points_tv = lambda x: sample_tv(x, _toy2d(ctx), ctx.config.eval)
  return long_run.diagnostics(ctx.exp, ctx.state, jax.random.fold_in(ctx.key, 1), ctx.out_dir,
                              points_tv)
