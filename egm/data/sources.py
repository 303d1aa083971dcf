"""Data sources named by a 'prefix:argument' string, and `load_dataset`.

Each loader module registers itself with `@register('prefix')`; a loader
takes the argument (the text after the first ':') and `LoadOptions` and
returns a `Dataset`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np

from egm.data.dataset import SUBSET_SEED, Dataset, LoadOptions, sample_indices
from egm.errors import EgmError
from egm.registry import add_to_registry

Loader = Callable[[str, LoadOptions], Dataset]
_LOADERS: dict[str, Loader] = {}


def register(prefix: str) -> Callable[[Loader], Loader]:
  """Registers the decorated loader under `prefix`."""
  def wrap(loader: Loader) -> Loader:
    add_to_registry(_LOADERS, 'data source', prefix, loader)
    return loader
  return wrap


def prefixes() -> tuple[str, ...]:
  """The registered source prefixes, sorted."""
  return tuple(sorted(_LOADERS))


def load_dataset(data_config) -> Dataset:
  """Loads the data named by `data_config.source` into memory.

  Args:
    data_config: the `config.data` ConfigDict (see egm/config/defaults.py).

  Returns:
    The Dataset. With `data_config.holdout` N > 0 a uniform sample of N
    training examples becomes the test split (and leaves the training
    split); then the train split keeps only a uniform sample of
    `data_config.max_examples` examples when that is > 0. Both samples use
    the fixed seed SUBSET_SEED, so every run on the same data gets the same
    subsets.
  """
  source = data_config.source
  prefix, sep, argument = source.partition(':')
  if not sep or prefix not in _LOADERS:
    valid = ', '.join(f'{p}:' for p in prefixes())
    raise EgmError(
        f'Unknown data source {source!r}: a source is written PREFIX:ARGUMENT '
        f'and the prefix must be one of {valid} (for example tfds:cifar10, '
        'folder:../shared/data/cifar10_jpeg.tar.gz, sklearn:digits or '
        'toy2d:8gaussians). Fix --config.data.source.')
  if data_config.channels not in (1, 3):
    raise EgmError(
        f'config.data.channels is {data_config.channels}, but images can only '
        'be converted to 1 (grey) or 3 (RGB) channels. Set '
        '--config.data.channels=1 or --config.data.channels=3.')
  if data_config.image_size < 1:
    raise EgmError(
        f'config.data.image_size is {data_config.image_size}; it must be a '
        'positive number of pixels, e.g. --config.data.image_size=32.')
  options = LoadOptions(
      image_size=int(data_config.image_size),
      channels=int(data_config.channels),
      train_split=data_config.train_split,
      test_split=data_config.test_split,
      data_dir=data_config.data_dir,
      texture_size=int(data_config.texture_size))
  dataset = _LOADERS[prefix](argument, options)
  _check_not_empty(dataset, source, options)
  if data_config.holdout > 0:
    dataset = hold_out(dataset, int(data_config.holdout))
  if data_config.max_examples > 0:
    dataset = dataclasses.replace(
        dataset, train=dataset.train.subset(int(data_config.max_examples)))
  return dataset


def _check_not_empty(dataset: Dataset, source: str, options: LoadOptions) -> None:
  """Raises EgmError when the training split, or a test split that exists, has no examples."""
  for split, name in ((dataset.train, options.train_split), (dataset.test, options.test_split)):
    if split is not None and len(split) == 0:
      raise EgmError(
          f'The {name} split of the data source {source!r} has no examples. Point '
          '--config.data.source at data with examples in both splits, or choose another '
          'split with --config.data.train_split / --config.data.test_split.')


def hold_out(dataset: Dataset, n: int, seed: int = SUBSET_SEED) -> Dataset:
  """A seeded uniform sample of `n` training examples as the test split, the rest as training.

  Both splits keep the examples in their original order.
  """
  train = dataset.train
  if n >= len(train):
    raise EgmError(
        f'config.data.holdout is {n}, but the training split has only {len(train)} '
        'examples. Lower --config.data.holdout.')
  order = sample_indices(len(train), len(train), seed)
  return dataclasses.replace(dataset, train=train.rows(np.sort(order[n:])),
                             test=train.rows(np.sort(order[:n])))


def require_path(path: str, source: str) -> str:
  """Returns `path`, '~' expanded; raises EgmError when it does not exist."""
  expanded = os.path.expanduser(path)
  if not path or not os.path.exists(expanded):
    raise EgmError(
        f'The data source {source!r} names {path!r}, which does not exist '
        f'(relative paths start from {os.getcwd()}). Fix the path in '
        '--config.data.source.')
  return expanded


def check_fixed_splits(options: LoadOptions, source: str) -> None:
  """Raises EgmError unless the splits are the default 'train' and 'test'."""
  if (options.train_split, options.test_split) != ('train', 'test'):
    raise EgmError(
        f'The data source {source!r} has exactly two splits, train and test, '
        f'but the config asks for train_split={options.train_split!r} and '
        f'test_split={options.test_split!r}. Set '
        '--config.data.train_split=train --config.data.test_split=test, or '
        'use config.data.max_examples to train on fewer examples.')
