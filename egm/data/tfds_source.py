"""`tfds:NAME` — a tensorflow-datasets data set, prepared beforehand.

Reads with `tfds.builder(...).as_data_source(...)` (array_record files,
random access), which needs no TensorFlow; preparing a data set does, and
needs internet, so it happens elsewhere. NAME may carry a config or version
('celeb_a', 'cifar10:3.0.2'); the splits may use tfds slicing ('train[:90%]').
Features 'image' and, when present, 'label' are read into memory and the
decoded arrays are cached (see egm/data/cache.py).
"""
import os

import numpy as np

from egm.data.cache import cached
from egm.data.dataset import ArraySource, Dataset, LoadOptions, image_dataset
from egm.data.image_ops import fit_pixels, parallel_chunks
from egm.data.sources import register
from egm.errors import EgmError

_FALLBACKS = {
    'cifar10': ('--config.data.source=folder:../shared/data/'
                'cifar10_jpeg.tar.gz (the CIFAR-10 images as JPEGs; name '
                'results cifar10_jpeg)'),
    'fashion_mnist': ('`python -m egm.data.fashion_mnist DIR` followed by '
                      '--config.data.source=idx:DIR/usr/share/datasets/'
                      'fashion-mnist'),
}


def data_dir(configured: str) -> str:
  """The tfds data dir: the config's, else $TFDS_DATA_DIR, else the default."""
  return os.path.expanduser(
      configured or os.environ.get('TFDS_DATA_DIR')
      or os.path.join('~', 'tensorflow_datasets'))


@register('tfds')
def load_tfds(argument: str, options: LoadOptions) -> Dataset:
  """Loads the prepared tfds data set `argument` into memory."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  directory = data_dir(options.data_dir)
  prepared = False
  # tfds warns about a missing folder before it says 'not prepared': look first.
  if os.path.isdir(os.path.join(directory, argument.split(':')[0].split('/')[0])):
    try:
      builder = tfds.builder(argument, data_dir=directory)
      prepared = builder.is_prepared()
    except tfds.core.registered.DatasetNotFoundError:
      prepared = False
  if not prepared:
    raise EgmError(_not_prepared_message(argument, directory))
  features = builder.info.features
  if 'image' not in features:
    raise EgmError(
        f'The tfds data set {argument!r} has the features '
        f'{", ".join(features)} but no "image". Only image data sets can be '
        'read through tfds:; convert others to an npz: file.')
  num_classes = None
  if 'label' in features:
    num_classes = getattr(features['label'], 'num_classes', None)
  key = {'source': 'tfds', 'name': argument, 'dir': str(builder.data_dir),
         'stamp': os.stat(os.path.join(builder.data_dir,
                                       'dataset_info.json')).st_mtime_ns,
         'image_size': options.image_size, 'channels': options.channels}
  splits = {}
  for split, name in (('train', options.train_split),
                      ('test', options.test_split)):
    arrays = cached(argument.replace('/', '_').replace(':', '_'),
                    {**key, 'split': name},
                    lambda name=name: _read_split(builder, name, options))
    splits[split] = ArraySource(arrays['x'], arrays.get('label'))
  if num_classes is None and splits['train'].label is not None:
    num_classes = int(splits['train'].label.max()) + 1
  return image_dataset(builder.name, splits['train'], splits['test'],
                       num_classes)


def _read_split(builder, split: str, options: LoadOptions) -> dict:
  """Decodes one split into uint8 images (and int32 labels)."""
  try:
    records = builder.as_data_source(split=split)
  except NotImplementedError as e:
    raise EgmError(
        f'The tfds data set {builder.name!r} in {builder.data_dir} was '
        f'prepared as {builder.info.file_format.value} files, which cannot be '
        'read without TensorFlow. Prepare it again as array_record (`tfds '
        f'build {builder.name} --data_dir {data_dir(options.data_dir)} '
        '--file_format=array_record` on a machine with TensorFlow).') from e
  except (ValueError, KeyError) as e:
    raise EgmError(
        f'The tfds data set {builder.name!r} has no split {split!r} ({e}); '
        f'its splits are {", ".join(builder.info.splits)}. Set '
        '--config.data.train_split / --config.data.test_split to one of them '
        '(slices like "train[:90%]" work too).') from e
  size, channels = options.image_size, options.channels
  n = len(records)
  x = np.empty((n, size, size, channels), np.uint8)
  has_label = 'label' in builder.info.features
  label = np.empty(n, np.int32)

  def decode(start: int, stop: int) -> None:
    for i, record in enumerate(records.__getitems__(range(start, stop)),
                               start):
      x[i] = fit_pixels(record['image'], size, channels)
      if has_label:
        label[i] = record['label']

  parallel_chunks(n, decode)
  return {'x': x, 'label': label} if has_label else {'x': x}


def _not_prepared_message(name: str, directory: str) -> str:
  fallback = _FALLBACKS.get(name.split(':')[0].split('/')[0])
  other = f' Or, without tfds, use {fallback}.' if fallback else ''
  return (
      f'The tfds data set {name!r} is not prepared in {directory} (the data '
      'dir comes from --config.data.data_dir, else $TFDS_DATA_DIR, else '
      '~/tensorflow_datasets), and tfds cannot download it here. Prepare it '
      f'there on a machine with internet and TensorFlow (`tfds build {name} '
      f'--data_dir {directory} --file_format=array_record`) or copy a '
      f'prepared copy into {directory}.{other}')
