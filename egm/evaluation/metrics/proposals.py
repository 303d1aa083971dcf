"""Generator proposals beside their Langevin revisions (methods with the `proposals` capability:
`generator_sample` and `revise`).

`proposals`: for 2-D data `generator_sample_tv`, the TV between a histogram of the
generator's own samples (before the descriptor's revision) and the true density, on
the grid of `sample_tv` (which scores the revised samples); for images
`proposals.png`, generator proposals above the same proposals after revision.
"""
import os

import jax
import numpy as np

from egm.evaluation.metrics.basic import sample_tv
from egm.evaluation.registry import register_metric
from egm.figures import images


@register_metric('proposals', methods=('proposals',))
def proposals(ctx) -> dict:
  cfg, method = ctx.config.eval, ctx.method
  key = jax.random.fold_in(ctx.key, 55)
  if ctx.dataset.kind == 'points':
    x = jax.jit(method.generator_sample, static_argnums=2)(ctx.state, key, cfg.num_tv_samples)
    return {'generator_sample_tv': sample_tv(np.asarray(x), ctx.dataset.toy2d, cfg)}
  n = min(cfg.num_samples, 16)
  proposed = jax.jit(method.generator_sample, static_argnums=2)(ctx.state, key, n)
  revised, _ = jax.jit(method.revise)(ctx.state, proposed, jax.random.fold_in(key, 1))
  shown = np.clip(np.concatenate([np.asarray(proposed), np.asarray(revised)]), -1, 1)
  images.save_image_grid(os.path.join(ctx.out_dir, 'proposals.png'), shown, ncols=n)
  return {}
