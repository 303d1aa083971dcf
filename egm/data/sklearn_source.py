"""`sklearn:digits` — the 1,797 8x8 digits bundled with scikit-learn."""
import numpy as np

from egm.data.dataset import ArraySource, Dataset, LoadOptions, image_dataset
from egm.data.image_ops import fit_array
from egm.data.sources import check_fixed_splits, register
from egm.errors import EgmError

NUM_TRAIN = 1500  # the first 1500 train; the last 297 test


@register('sklearn')
def load_sklearn(argument: str, options: LoadOptions) -> Dataset:
  """Loads sklearn.datasets.load_digits, values 0..16 scaled to 0..255."""
  source = f'sklearn:{argument}'
  if argument != 'digits':
    raise EgmError(
        f'Unknown scikit-learn data set in {source!r}: the only one is '
        'digits. Use --config.data.source=sklearn:digits.')
  check_fixed_splits(options, source)
  import sklearn.datasets  # pylint: disable=g-import-not-at-top
  digits = sklearn.datasets.load_digits()
  x = np.round(digits.images * (255 / 16)).astype(np.uint8)
  x = fit_array(x, options.image_size, options.channels)
  label = digits.target.astype(np.int32)
  return image_dataset(
      'digits', ArraySource(x[:NUM_TRAIN], label[:NUM_TRAIN]),
      ArraySource(x[NUM_TRAIN:], label[NUM_TRAIN:]), 10)
