"""Long-run chain diagnostics of MCMC-trained EBMs (Nijkamp et al., arXiv 1903.12370).

A short-run EBM's K-step samples can look like data while its long-run
chains (here `eval.long_run_factor`·K steps, unadjusted and MH-adjusted) drift
away; a convergent model's long-run samples stay close. Both long runs start
from noise and sample exp(−E/T) at the training temperature T = σ²/(2s) (the
unadjusted one up to its discretisation bias and clamp; the MH one exactly,
proposing the training step or a step adapted on a pilot run, see
egm/methods/ebm.py), so they differ by the MH correction only. Reported for 2-D
data as the TV of sample histograms at K steps and at the long run (`short_run_tv`,
`long_run_tv`, `long_run_mh_tv`, with PNGs of each), for images as mean final
energies with `short_vs_long_run.png` (rows: short-run, long-run, MH long-run);
the MH acceptance rate is reported for both.
"""
import os

import jax
import numpy as np

from egm.figures import images


def diagnostics(exp, state, key, out_dir: str, points_tv=None) -> dict:
  """Runs short-run and long-run chains from noise on `exp.method`; returns the metrics.

  `points_tv(samples (n, 2)) -> float` scores 2-D samples against the true density.
  """
  cfg, method = exp.config.eval, exp.method
  k_steps = exp.config.ebm.n_steps
  long_steps = cfg.long_run_factor * k_steps
  points = exp.dataset.kind == 'points'
  n = cfg.num_tv_samples if points else cfg.num_samples
  run = jax.jit(method.long_run, static_argnums=(2, 3, 4))
  chains = {'short_run': run(state, key, n, k_steps, False),
            'long_run': run(state, key, n, long_steps, False),
            'long_run_mh': run(state, key, n, long_steps, True)}
  results = {'long_run_steps': long_steps,
             'long_run_mh_acceptance': float(np.mean(chains['long_run_mh'][1].acceptance_rate))}
  for name, (x, info) in chains.items():
    results[f'{name}_energy'] = float(info.energy[-1])
    if points:
      results[f'{name}_tv'] = points_tv(np.asarray(x))
      images.save_points_png(os.path.join(out_dir, f'{name}.png'), np.asarray(x[:2000]),
                             cfg.grid_extent)
  if not points:
    shown = min(n, 16)
    # The MH-adjusted chain is not clamped (that would break detailed balance): clip for display.
    grid = np.clip(np.concatenate([np.asarray(x[:shown]) for x, _ in chains.values()]), -1, 1)
    images.save_image_grid(os.path.join(out_dir, 'short_vs_long_run.png'), grid, ncols=shown)
  return results
