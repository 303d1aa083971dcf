"""Bringing decoded images to the configured size and channel count."""
import concurrent.futures
import os
from typing import Callable

import numpy as np
import PIL.Image

_MODES = {1: 'L', 3: 'RGB'}


def fit_image(image: PIL.Image.Image, size: int, channels: int) -> np.ndarray:
  """Returns uint8 (size, size, channels).

  A non-square image is centre-cropped to a square first; the resize is
  bilinear and happens only when the size differs.
  """
  width, height = image.size
  if width != height:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
  if image.mode != _MODES[channels]:
    image = image.convert(_MODES[channels])
  if image.size != (size, size):
    image = image.resize((size, size), PIL.Image.Resampling.BILINEAR)
  return np.asarray(image, dtype=np.uint8).reshape(size, size, channels)


def fit_pixels(image: np.ndarray, size: int, channels: int) -> np.ndarray:
  """Returns uint8 (size, size, channels) from uint8 (H, W[, C]), C in 1, 3, 4.

  An image already at the target shape is returned without copying.
  """
  if image.ndim == 2:
    image = image[..., None]
  if image.shape == (size, size, channels):
    return image
  if image.shape[-1] == 1:
    return fit_image(PIL.Image.fromarray(image[..., 0]), size, channels)
  return fit_image(PIL.Image.fromarray(image), size, channels)


def fit_array(x: np.ndarray, size: int, channels: int) -> np.ndarray:
  """Returns uint8 (N, size, size, channels) from uint8 (N, H, W[, C])."""
  if x.ndim == 3:
    x = x[..., None]
  if x.shape[1:] == (size, size, channels):
    return x
  out = np.empty((len(x), size, size, channels), np.uint8)
  for i, image in enumerate(x):
    out[i] = fit_pixels(image, size, channels)
  return out


def parallel_chunks(n: int, work: Callable[[int, int], None],
                    chunk: int = 1024) -> None:
  """Calls work(start, stop) over [0, n) in chunks on a thread pool.

  PIL releases the GIL while it decodes and resizes, so threads help.
  """
  with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
    futures = [pool.submit(work, start, min(start + chunk, n))
               for start in range(0, n, chunk)]
    for future in futures:
      future.result()
