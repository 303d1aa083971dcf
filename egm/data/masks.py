"""Missing-pixel masks for learning from incomplete data.

A spec is 'none', 'pixels:P' (each pixel missing with probability P) or
'block:S' (an S x S square at a random position missing). Masks are 1 for
observed pixels and depend only on (seed, example index), so an example keeps
the same holes in every epoch and on every process.
"""
from typing import Callable

import numpy as np

from egm.errors import EgmError

_MASK_STREAM = 2  # keeps mask generators apart from the pipeline's others
MaskFn = Callable[[np.random.Generator], np.ndarray]


def _pixels(fraction: float, height: int, width: int) -> MaskFn:
  if not 0 <= fraction < 1:
    raise ValueError('the fraction missing must lie in [0, 1)')
  return lambda rng: (rng.uniform(size=(height, width)) >= fraction)


def _block(side: float, height: int, width: int) -> MaskFn:
  if side != int(side) or not 1 <= side <= min(height, width):
    raise ValueError(f'the side must be a whole number of pixels from 1 to '
                     f'{min(height, width)} for {height}x{width} images')
  side = int(side)

  def mask(rng):
    top = rng.integers(0, height - side + 1)
    left = rng.integers(0, width - side + 1)
    out = np.ones((height, width), bool)
    out[top:top + side, left:left + side] = False
    return out
  return mask


_KINDS = {'pixels': _pixels, 'block': _block}


def parse_mask(spec: str, height: int, width: int, key: str = 'data.mask') -> MaskFn | None:
  """Returns the mask function for `spec` and the image size, None for 'none'.

  A mask function maps a generator to a bool (height, width), True = observed. A bad spec
  is an EgmError naming the config `key` it came from and a value that fits the images.
  """
  if spec == 'none':
    return None
  kind, _, value = spec.partition(':')
  try:
    if kind not in _KINDS:
      raise ValueError(f'the kind must be one of none, {", ".join(_KINDS)}')
    return _KINDS[kind](float(value), height, width)
  except ValueError as e:
    raise EgmError(
        f'Invalid mask {spec!r} for config.{key}: {e}. Use --config.{key}=none, '
        'pixels:<fraction missing> (e.g. pixels:0.5) or block:<side in pixels> (e.g. '
        f'{half_block(height, width)}).') from e


def half_block(height: int, width: int) -> str:
  """'block:<half the shorter side>': a square hole of half the image's side."""
  return f'block:{max(1, min(height, width) // 2)}'


def example_masks(mask_fn: MaskFn, seed: int,
                  indices: np.ndarray) -> np.ndarray:
  """Returns float32 (len(indices), height, width, 1); 1 = observed."""
  masks = [mask_fn(np.random.default_rng([seed, int(i), _MASK_STREAM]))
           for i in indices]
  return np.stack(masks).astype(np.float32)[..., None]
