"""The in-memory dataset every source loads into."""
from __future__ import annotations

import dataclasses

import numpy as np

SUBSET_SEED = 0  # seeds every subset of a split: data.max_examples, data.holdout, eval subsets
_SUBSET_STREAM = 0x5B5E7  # keeps subset draws apart from the training permutations


def sample_indices(size: int, n: int, seed: int = SUBSET_SEED) -> np.ndarray:
  """Indices int64 (min(n, size),) of a seeded uniform sample without replacement of range(size).

  They are the first n entries of one seeded permutation of range(size), in its order: the
  sample of n is a prefix of the sample of any larger n, and never the first rows of a split
  (whose storage order may follow the classes).
  """
  return np.random.default_rng([seed, _SUBSET_STREAM]).permutation(size)[:n]


@dataclasses.dataclass(frozen=True, eq=False)
class ArraySource:
  """A random-access split held in memory.

  Attributes:
    x: uint8 (N, H, W, C) images, or float32 (N, 2) points.
    label: int32 (N,) class labels, or None.
  """
  x: np.ndarray
  label: np.ndarray | None = None

  def __post_init__(self):
    if self.label is not None and len(self.label) != len(self.x):
      raise ValueError(
          f'{len(self.x)} examples but {len(self.label)} labels.')

  def __len__(self) -> int:
    return len(self.x)

  @property
  def is_image(self) -> bool:
    return self.x.dtype == np.uint8

  def get(self, indices) -> dict[str, np.ndarray]:
    """Returns {'x': float32, 'label': int32 if present} for `indices`.

    Images are scaled from uint8 to [-1, 1]; points are returned as they are.
    """
    x = self.x[indices]
    if self.is_image:
      x = x.astype(np.float32) / np.float32(127.5) - np.float32(1)
    batch = {'x': x.astype(np.float32, copy=False)}
    if self.label is not None:
      batch['label'] = self.label[indices]
    return batch

  def rows(self, indices: np.ndarray) -> ArraySource:
    """The examples at `indices` (int (M,)), stored as they are here."""
    label = None if self.label is None else self.label[indices]
    return ArraySource(self.x[indices], label)

  def subset(self, n: int, seed: int = SUBSET_SEED) -> ArraySource:
    """A seeded uniform sample of min(n, N) examples, in increasing index order."""
    return self.rows(np.sort(sample_indices(len(self), n, seed)))


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A loaded data source.

  Attributes:
    name: e.g. 'cifar10', 'cifar10_jpeg', 'fashion_mnist', 'digits',
      '8gaussians'.
    kind: 'image' or 'points'.
    train: the training split.
    test: the test split, or None.
    num_classes: number of classes when labels exist, else None.
    toy2d: the toy distribution's name when kind == 'points' and the points
      come from `sample_toy2d` (for true-density evaluation), else None.
    exemplar: uint8 (H, W, C), the whole image when the examples are crops of
      one texture (`texture:` source), else None.
  """
  name: str
  kind: str
  train: ArraySource
  test: ArraySource | None
  num_classes: int | None
  toy2d: str | None = None
  exemplar: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class LoadOptions:
  """The parts of the data config a source loader reads.

  Attributes:
    image_size: images come out image_size x image_size (pixels).
    channels: 1 (grey) or 3 (RGB).
    train_split: name of the training split.
    test_split: name of the test split.
    data_dir: tfds data directory ('' means $TFDS_DATA_DIR or
      ~/tensorflow_datasets).
    texture_size: shorter side, in pixels, a texture exemplar is resized to
      before cropping (0: as it is).
  """
  image_size: int = 32
  channels: int = 3
  train_split: str = 'train'
  test_split: str = 'test'
  data_dir: str = ''
  texture_size: int = 0


def image_dataset(name: str, train: ArraySource, test: ArraySource | None,
                  num_classes: int | None) -> Dataset:
  """An image Dataset; `num_classes` is dropped when there are no labels."""
  if train.label is None:
    num_classes = None
  return Dataset(name=name, kind='image', train=train, test=test,
                 num_classes=num_classes)

