"""`npz:FILE` — arrays in a NumPy .npz file.

Keys: `x` (uint8 images (N, H, W[, C]), float images in [-1, 1], or float
(N, 2) points), optional `label` (N,), and optionally `x_test`/`label_test`
for a test split.
"""
import os
import zipfile

import numpy as np

from egm.data.dataset import (ArraySource, Dataset, LoadOptions,
                              image_dataset)
from egm.data.image_ops import fit_array
from egm.data.sources import check_fixed_splits, register, require_path
from egm.errors import EgmError


@register('npz')
def load_npz(argument: str, options: LoadOptions) -> Dataset:
  """Loads images or 2-D points from the .npz file `argument`."""
  source = f'npz:{argument}'
  check_fixed_splits(options, source)
  path = require_path(argument, source)
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise EgmError(
        f'Could not read {path} as a NumPy .npz file without pickles ({e}). '
        'Write it with np.savez(FILE, x=..., label=...) using numeric '
        'arrays.') from e
  if 'x' not in arrays:
    raise EgmError(
        f'{path} has the arrays {sorted(arrays)} but no `x`. Save the data '
        'as np.savez(FILE, x=..., label=...), optionally with x_test and '
        'label_test.')
  train = _split(arrays, 'x', 'label', path, options)
  test = None
  if 'x_test' in arrays:
    test = _split(arrays, 'x_test', 'label_test', path, options)
  name = os.path.splitext(os.path.basename(path))[0]
  num_classes = None
  if train.label is not None and len(train.label):
    num_classes = int(train.label.max()) + 1
  if train.x.dtype == np.float32:
    return Dataset(name=name, kind='points', train=train, test=test,
                   num_classes=num_classes)
  return image_dataset(name, train, test, num_classes)


def _split(arrays: dict, x_key: str, label_key: str, path: str,
           options: LoadOptions) -> ArraySource:
  x = arrays[x_key]
  label = arrays.get(label_key)
  if label is not None:
    if label.shape != (len(x),) or not np.issubdtype(label.dtype, np.integer):
      raise EgmError(
          f'{path}: `{label_key}` has dtype {label.dtype} and shape '
          f'{label.shape}, but must hold one integer per row of `{x_key}` '
          f'({len(x)}). Save integer class labels of shape (N,).')
    label = label.astype(np.int32)
  if np.issubdtype(x.dtype, np.floating):
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
      raise EgmError(
          f'{path}: `{x_key}` contains {bad} NaN or infinite values. Remove '
          'or repair those examples before saving the file.')
  if x.ndim == 2 and x.shape[1] == 2:
    return ArraySource(x.astype(np.float32), label)
  if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3, 4)):
    raise EgmError(
        f'{path}: `{x_key}` has shape {x.shape}, but npz: takes images '
        '(N, H, W) or (N, H, W, C) with C in 1, 3, 4, or 2-D points (N, 2). '
        'Reshape the array before saving it.')
  return ArraySource(fit_array(_to_uint8(x, x_key, path), options.image_size,
                               options.channels), label)


def _to_uint8(x: np.ndarray, key: str, path: str) -> np.ndarray:
  """uint8 images from uint8, integer 0..255 or float [-1, 1] images."""
  if np.issubdtype(x.dtype, np.floating):
    low, high = float(x.min()), float(x.max())
    if low < -1.001 or high > 1.001:
      raise EgmError(
          f'{path}: float images in `{key}` must lie in [-1, 1], but they '
          f'span [{low:.3g}, {high:.3g}]. Rescale them (x / 127.5 - 1 for '
          '0..255 data) or save them as uint8.')
    return np.round((np.clip(x, -1, 1) + 1) * 127.5).astype(np.uint8)
  if np.issubdtype(x.dtype, np.integer) and x.min() >= 0 and x.max() <= 255:
    return x.astype(np.uint8, copy=False)
  raise EgmError(
      f'{path}: `{key}` has dtype {x.dtype} with values outside 0..255. Save '
      'images as uint8, or as floats in [-1, 1].')
