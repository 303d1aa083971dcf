"""`idx:DIR` — MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST, ...).

DIR holds train-images-idx3-ubyte, train-labels-idx1-ubyte,
t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each gzipped (.gz) or not.
When only the t10k files exist, they serve as both splits.
"""
import gzip
import hashlib
import logging
import os

import numpy as np

from egm.data.dataset import ArraySource, Dataset, LoadOptions, image_dataset
from egm.data.image_ops import fit_array
from egm.data.sources import check_fixed_splits, register, require_path
from egm.errors import EgmError

# The third byte of the magic number names the element type (big-endian).
_DTYPES = {0x08: '>u1', 0x09: '>i1', 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4',
           0x0E: '>f8'}
_PREFIXES = {'train': 'train', 'test': 't10k'}
# Known data sets, by sha256 (first 16 hex digits) of their t10k label bytes.
_KNOWN = {'ddeff807876a9661': 'mnist', '3d0e6c6ea990b53b': 'fashion_mnist'}
log = logging.getLogger(__name__)


def read_idx(path: str) -> np.ndarray:
  """Returns the array stored in an IDX file (gzipped when named *.gz)."""
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      data = f.read()
  except (OSError, EOFError) as e:
    raise EgmError(
        f'Could not read the IDX file {path} ({e}). Check that it is '
        'complete, e.g. `gzip -t` for a .gz file, or fetch it again.') from e
  if len(data) < 4 or data[:2] != b'\0\0' or data[2] not in _DTYPES:
    raise EgmError(
        f'{path} is not an IDX file: its magic number is {data[:4].hex()}, '
        'while IDX files start with 00 00, a type byte (08 for uint8) and '
        'the number of dimensions. Point idx: at the original MNIST-format '
        'files (gzipped or not).')
  ndim = data[3]
  header = 4 + 4 * ndim
  shape = tuple(np.frombuffer(data[4:header], '>u4').astype(int))
  dtype = np.dtype(_DTYPES[data[2]])
  expected = header + int(np.prod(shape)) * dtype.itemsize
  if len(data) != expected:
    raise EgmError(
        f'{path} holds {len(data)} bytes, but its IDX header (shape {shape}) '
        f'promises {expected}. The file is truncated or corrupt; fetch it '
        'again.')
  return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(
      dtype.newbyteorder('='))


def _find(directory: str, prefix: str, kind: str, ndim: int) -> str | None:
  """Path of e.g. train-images-idx3-ubyte[.gz] in `directory`, or None."""
  for sep in ('-', '.'):
    for suffix in ('.gz', ''):
      path = os.path.join(directory,
                          f'{prefix}-{kind}{sep}idx{ndim}-ubyte{suffix}')
      if os.path.isfile(path):
        return path
  return None


def _read_split(directory: str, prefix: str) -> ArraySource | None:
  images = _find(directory, prefix, 'images', 3)
  if images is None:
    return None
  x = read_idx(images)
  if x.dtype != np.uint8 or x.ndim != 3:
    raise EgmError(
        f'{images} holds {x.dtype} data of shape {x.shape}, but idx: expects '
        'uint8 images of shape (N, H, W). Point idx: at MNIST-format image '
        'files.')
  labels = _find(directory, prefix, 'labels', 1)
  label = None
  if labels is not None:
    label = read_idx(labels).astype(np.int32)
    if label.shape != (len(x),):
      raise EgmError(
          f'{labels} holds labels of shape {label.shape} for {len(x)} images '
          f'in {images}. The two files do not belong together; fetch them '
          'again.')
  return ArraySource(x, label)


@register('idx')
def load_idx(argument: str, options: LoadOptions) -> Dataset:
  """Loads IDX image/label files from the directory `argument`."""
  source = f'idx:{argument}'
  check_fixed_splits(options, source)
  directory = require_path(argument, source)
  splits = {s: _read_split(directory, p) for s, p in _PREFIXES.items()}
  if splits['test'] is None:
    raise EgmError(
        f'The directory {directory} of {source!r} has no '
        't10k-images-idx3-ubyte(.gz) file. Point idx: at the directory that '
        'holds the MNIST-format files (train-* and t10k-*).')
  if splits['train'] is None:
    log.warning('%s has only the t10k (test) files; using them as the '
                'training split as well.', directory)
    splits['train'] = splits['test']
  fitted = {id(s): ArraySource(fit_array(s.x, options.image_size,
                                         options.channels), s.label)
            for s in splits.values()}
  train, test = fitted[id(splits['train'])], fitted[id(splits['test'])]
  num_classes = None
  if train.label is not None:
    num_classes = int(train.label.max()) + 1
  return image_dataset(_name(directory, test), train, test, num_classes)


def _name(directory: str, test: ArraySource) -> str:
  """The data set's name if its test labels are known, else the folder name."""
  if test.label is not None:
    digest = hashlib.sha256(test.label.astype(np.uint8).tobytes()).hexdigest()
    if digest[:16] in _KNOWN:
      return _KNOWN[digest[:16]]
  return os.path.basename(os.path.normpath(directory)).replace('-', '_')
