"""Pattern completion (methods with `complete(state, x, mask, key)`, e.g. CoopNets).

`completion`: each of a seeded uniform sample of `eval.completion_examples` test images
gets the occlusion `eval.completion_mask` (e.g. block:14, at a random place per image);
the method fills the hidden pixels. Reported, per hidden pixel in [-1, 1] units:
`completion_mse` of the method's fill, beside `completion_mean_image_mse` of filling
with the mean training image (over a seeded uniform sample of at most 10,000);
`completion.png` shows rows of occluded inputs (holes mid-grey), completions and
originals. Each image's occlusion depends only on its row in the test split.
"""
import os

import jax
import numpy as np

from egm import data
from egm.data.dataset import sample_indices
from egm.data.masks import example_masks, parse_mask
from egm.evaluation import images
from egm.evaluation.registry import register_metric

_MASK_SEED = 8765  # completion masks: not the training masks
_MEAN_IMAGE_EXAMPLES = 10_000


def hidden_mse(x: np.ndarray, filled: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
  """(sum of squared errors over hidden entries, number of hidden entries); mask 1 = observed."""
  hidden = np.broadcast_to(1.0 - mask, x.shape)
  return float(np.sum(hidden * np.square(x - filled))), float(np.sum(hidden))


@register_metric('completion', methods=('complete',), kind='image', test=True,
                 config=('eval.completion_mask',))
def completion(ctx) -> dict:
  cfg = ctx.config.eval
  mask_fn = parse_mask(cfg.completion_mask, *ctx.image_shape[:2])
  train = ctx.dataset.train
  mean_image = np.mean(train.get(sample_indices(len(train), _MEAN_IMAGE_EXAMPLES))['x'], axis=0)
  complete = jax.jit(ctx.method.complete)
  key = jax.random.fold_in(ctx.key, 77)
  sums = {'model': [0.0, 0.0], 'mean': [0.0, 0.0]}
  shown = None
  examples = 0
  for i, batch in enumerate(data.eval_batches(ctx.dataset.test, batch_size=cfg.batch_size,
                                              max_examples=cfg.completion_examples)):
    x = batch['x']
    mask = example_masks(mask_fn, _MASK_SEED, batch['index'])
    examples += len(x)
    filled = np.asarray(complete(ctx.state, x * mask, mask, jax.random.fold_in(key, i)))
    mean_filled = mask * x + (1.0 - mask) * mean_image
    for name, fill in (('model', filled), ('mean', mean_filled)):
      err, count = hidden_mse(x, fill, mask)
      sums[name][0] += err
      sums[name][1] += count
    if shown is None:
      n = min(len(x), 12)
      shown = np.concatenate([(x * mask)[:n], np.clip(filled[:n], -1, 1), x[:n]])
  images.save_image_grid(os.path.join(ctx.out_dir, 'completion.png'), shown,
                         ncols=len(shown) // 3)
  return {'completion_mse': sums['model'][0] / sums['model'][1],
          'completion_mean_image_mse': sums['mean'][0] / sums['mean'][1],
          'completion_examples': examples}
