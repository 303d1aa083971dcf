"""Pattern completion / recovery of occluded images.

`completion`: each of a seeded uniform sample of `eval.completion_examples` test images
gets the occlusion `eval.completion_mask` ('auto': a block of half the image side, at a
random place per image; or e.g. block:14, pixels:0.5);
the method fills the hidden pixels: with `complete(state, x, mask, key)` where it has one
(CoopNets, abp), else with its reconstruction from the observed pixels
(`reconstruct(state, {'x': x·mask, 'mask': mask}, key)`: the VAE and the triangle, whose
encoders see only observed pixels). Reported, per hidden pixel in [-1, 1] units:
`completion_mse` of the method's fill, beside `completion_mean_image_mse` of filling
with the mean training image (over a seeded uniform sample of at most 10,000), and the
same as PSNR on the hidden pixels (dB, range 2): `completion_psnr`,
`completion_mean_image_psnr`;
`completion.png` shows rows of occluded inputs (holes mid-grey), completions and
originals. Each image's occlusion depends only on its row in the test split.
"""
import os

import jax
import numpy as np

from egm import data
from egm.data.dataset import sample_indices
from egm.data.masks import example_masks, half_block, parse_mask
from egm.errors import EgmError
from egm.evaluation.registry import register_metric
from egm.figures import images
from egm.methods.contract import has_capability

_MASK_SEED = 8765  # completion masks: not the training masks
_MEAN_IMAGE_EXAMPLES = 10_000


def hidden_mse(x: np.ndarray, filled: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
  """(sum of squared errors over hidden entries, number of hidden entries); mask 1 = observed."""
  hidden = np.broadcast_to(1.0 - mask, x.shape)
  return float(np.sum(hidden * np.square(x - filled))), float(np.sum(hidden))


def _fill_function(method):
  """(state, x_observed, mask, key) -> x filled: `complete`, else a masked reconstruction."""
  if has_capability(method, 'complete'):
    return method.complete

  def fill(state, x, mask, key):
    return mask * x + (1.0 - mask) * method.reconstruct(state, {'x': x, 'mask': mask}, key)
  return fill


def psnr_from_mse(mse: float) -> float:
  """10·log10(2² / mse) dB: PSNR of images in [-1, 1] (range 2)."""
  return float(10.0 * np.log10(4.0 / mse)) if mse > 0 else float('inf')


@register_metric('completion', any_of=('complete', 'reconstruct'), kind='image', test=True,
                 config=('eval.completion_mask',))
def completion(ctx) -> dict:
  cfg = ctx.config.eval
  height, width = ctx.image_shape[:2]
  spec = half_block(height, width) if cfg.completion_mask == 'auto' else cfg.completion_mask
  try:
    mask_fn = parse_mask(spec, height, width, key='eval.completion_mask')
  except EgmError as e:  # e.g. block:14 on 8x8 digits
    print(f'note: skipping the completion metric: {e}', flush=True)
    return {}
  train = ctx.dataset.train
  mean_image = np.mean(train.get(sample_indices(len(train), _MEAN_IMAGE_EXAMPLES))['x'], axis=0)
  complete = jax.jit(_fill_function(ctx.method))
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
  mse, mean_mse = sums['model'][0] / sums['model'][1], sums['mean'][0] / sums['mean'][1]
  return {'completion_mse': mse, 'completion_mean_image_mse': mean_mse,
          'completion_psnr': psnr_from_mse(mse), 'completion_mean_image_psnr':
          psnr_from_mse(mean_mse), 'completion_examples': examples}
