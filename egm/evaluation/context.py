"""What a registered metric sees: the experiment, the state, where to write, shared samples."""
import dataclasses
import functools
import os

import jax
import numpy as np

from egm import data
from egm.errors import EgmError
from egm.evaluation import feature_metrics
from egm.evaluation.feature_net import FeatureNet, load_feature_net


@dataclasses.dataclass
class EvalContext:
  """One evaluation of one state; expensive shared pieces are computed once, on first use.

  Attributes:
    exp: the Experiment (config, dataset, method).
    state: the method's trained state.
    out_dir: where figures go (`<workdir>/eval`).
    key: the evaluation's root key; metrics fold in their own constants.
  """
  exp: object
  state: object
  out_dir: str
  key: jax.Array
  memo: dict = dataclasses.field(default_factory=dict)

  def once(self, key, compute):
    """`compute()`, computed on the first call with `key` and remembered."""
    if key not in self.memo:
      self.memo[key] = compute()
    return self.memo[key]

  @property
  def config(self):
    return self.exp.config

  @property
  def method(self):
    return self.exp.method

  @property
  def dataset(self):
    return self.exp.dataset

  @property
  def workdir(self) -> str:
    return os.path.dirname(os.path.abspath(self.out_dir))

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(self.dataset.train.x.shape[1:])

  @property
  def inception_weights(self) -> str:
    return self.config.eval.inception_weights or os.environ.get('EGM_INCEPTION_WEIGHTS', '')

  @functools.cached_property
  def feature_net(self) -> FeatureNet:
    """The classifier of `eval.feature_workdir` (loaded once)."""
    return load_feature_net(self.config.eval.feature_workdir, self.image_shape)

  @functools.cached_property
  def jitted_sample(self):
    return jax.jit(self.method.sample, static_argnums=2)

  def sample_batches(self, seed: int, batch_size: int):
    """Endless batches (batch_size, ...) of model samples, clipped to [-1, 1] for images."""
    key = jax.random.fold_in(self.key, seed)
    for i in range(2 ** 31):
      x = np.asarray(self.jitted_sample(self.state, jax.random.fold_in(key, i), batch_size))
      yield np.clip(x, -1.0, 1.0) if self.dataset.kind == 'image' else x

  def real_batches(self, split: str = 'train', max_examples: int = 0):
    """A seeded uniform sample of `max_examples` (0: all) examples of the split, in batches.

    Batches of `eval.batch_size` ({'x', 'index', 'label'?}) from `data.eval_batches`; the same
    examples on every call and every run.
    """
    source = self.dataset.train if split == 'train' else self.dataset.test
    return data.eval_batches(source, batch_size=self.config.eval.batch_size,
                             max_examples=max_examples)

  @functools.cached_property
  def num_fid_samples(self) -> int:
    """`eval.num_fid_samples`, checked against the training images available."""
    return check_sample_count(self.config.eval.num_fid_samples, len(self.dataset.train))

  @functools.cached_property
  def fid_samples(self) -> np.ndarray:
    """`eval.num_fid_samples` model samples (N, H, W, C) in [-1, 1], shared by FID/KID/PR."""
    return feature_metrics.extract_features(
        lambda x: x, self.sample_batches(3, self.config.eval.batch_size), self.num_fid_samples,
        desc='samples')


MIN_FID_SAMPLES = 10


def check_sample_count(requested: int, available: int) -> int:
  """Raises EgmError unless MIN_FID_SAMPLES <= requested <= available; returns requested."""
  if requested < MIN_FID_SAMPLES:
    raise EgmError(
        f'config.eval.num_fid_samples is {requested}, too few for FID/KID/precision-recall '
        f'(at least {MIN_FID_SAMPLES}; 10,000 is standard). Raise --config.eval.num_fid_samples.')
  if requested > available:
    raise EgmError(
        f'config.eval.num_fid_samples is {requested}, but the training split holds only '
        f'{available} real images to compare with. Lower --config.eval.num_fid_samples to at '
        f'most {available}.')
  return requested
