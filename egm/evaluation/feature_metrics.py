"""Sample-quality metrics on network features: FID, KID, Inception Score, precision/recall.

Features stream through a jitted feature function in batches (`extract_features`); their
moments accumulate in float64 (`FeatureStats`), and dataset moments are cached as .npz
(`cached_dataset_stats`). Images are egm images: NHWC in [-1, 1].
"""

import dataclasses
import os
import re
import sys
import tempfile
import time
import warnings
from typing import Callable, Iterable

import jax
import numpy as np
from scipy import linalg
from scipy import special

from egm.data.dataset import SUBSET_SEED
from egm.errors import EgmError

_RANGE_TOLERANCE = 1e-3
_PROGRESS_INTERVAL_S = 0.5


@dataclasses.dataclass
class FeatureStats:
  """Mean (D,), covariance (D, D) (divisor n - 1) and count n of features, float64."""
  mean: np.ndarray
  cov: np.ndarray
  n: int

  @classmethod
  def empty(cls, dim: int) -> 'FeatureStats':
    """Statistics of no samples, to `update` batch by batch."""
    return cls(np.zeros(dim), np.zeros((dim, dim)), 0)

  @classmethod
  def from_features(cls, features) -> 'FeatureStats':
    features = _features_2d(features, 'FeatureStats.from_features')
    n = features.shape[0]
    mean = features.mean(axis=0)
    centred = features - mean
    cov = centred.T @ centred / max(n - 1, 1)
    return cls(mean, cov, n)

  def update(self, features) -> 'FeatureStats':
    """Adds a batch (N, D) in place (Chan et al.'s pairwise update); returns self."""
    batch = FeatureStats.from_features(features)
    if self.n == 0:
      self.mean, self.cov, self.n = batch.mean, batch.cov, batch.n
      return self
    if batch.mean.shape != self.mean.shape:
      raise EgmError(f'FeatureStats.update got features of dimension {batch.mean.shape[0]}, '
                     f'but the statistics have dimension {self.mean.shape[0]}.')
    n = self.n + batch.n
    delta = batch.mean - self.mean
    m2 = (self.cov * (self.n - 1) + batch.cov * (batch.n - 1) +
          np.outer(delta, delta) * (self.n * batch.n / n))
    self.mean = self.mean + delta * (batch.n / n)
    self.cov = m2 / (n - 1)
    self.n = n
    return self

  def save(self, path: str) -> None:
    """Writes mu, sigma (pytorch-fid's key names) and n to an .npz, atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix='.npz', delete=False) as f:
      np.savez(f, mu=self.mean, sigma=self.cov, n=np.int64(self.n))
    os.replace(f.name, path)

  @classmethod
  def load(cls, path: str) -> 'FeatureStats':
    try:
      with np.load(path) as data:
        return cls(data['mu'].astype(np.float64), data['sigma'].astype(np.float64),
                   int(data['n']))
    except (OSError, ValueError, KeyError) as e:
      raise EgmError(f'Could not read feature statistics from {path} ({e}); it must be an .npz '
                     'with mu, sigma and n. Delete it to recompute.') from e


def _features_2d(features, caller: str) -> np.ndarray:
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] == 0:
    raise EgmError(f'{caller} expects features of shape (N, D) with N >= 1, got shape '
                   f'{features.shape}. Flatten per-example features to vectors first.')
  if not np.all(np.isfinite(features)):
    raise EgmError(f'{caller} got features containing NaN or inf; the images or the feature '
                   'network produced non-finite values.')
  return features


def check_images(images, caller: str = 'feature extraction') -> None:
  """Raises EgmError unless images (N, H, W, C) are finite and in [-1, 1]."""
  images = np.asarray(images)
  if images.ndim != 4:
    raise EgmError(f'{caller} expects images of shape (N, H, W, C), got shape {images.shape}. '
                   'Add a channel axis to grey images (images[..., None]).')
  if not np.all(np.isfinite(images)):
    raise EgmError(f'{caller} got images containing NaN or inf; the model that produced them '
                   'has probably diverged.')
  low, high = float(images.min()), float(images.max())
  if low < -1 - _RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
    raise EgmError(
        f'{caller} expects images in [-1, 1] (the range of all egm images), but their values '
        f'range over [{low:.4g}, {high:.4g}]. Map them to [-1, 1] first: x / 127.5 - 1 for '
        'bytes, 2 * x - 1 for [0, 1].')


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
  """||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)) of two Gaussians, float64.

  tr((cov1 cov2)^(1/2)) is the sum of the square roots of the eigenvalues of the
  symmetric PSD matrix cov1^(1/2) cov2 cov1^(1/2) (which has the same spectrum as
  cov1 cov2), computed with two symmetric eigendecompositions: exact for singular
  covariances too, and about 4x faster than `scipy.linalg.sqrtm` at D = 2048.
  Eigenvalues that round-off makes slightly negative count as 0.
  """
  mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
  cov1, cov2 = (np.atleast_2d(np.asarray(c, np.float64)) for c in (cov1, cov2))
  d = mu1.shape[0]
  if mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
    raise EgmError(f'frechet_distance needs means (D,) and covariances (D, D) of one D, got '
                   f'{mu1.shape}, {cov1.shape}, {mu2.shape}, {cov2.shape}.')
  values, vectors = linalg.eigh(0.5 * (cov1 + cov1.T))
  sqrt_cov1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
  product = sqrt_cov1 @ (0.5 * (cov2 + cov2.T)) @ sqrt_cov1
  trace_covmean = np.sum(np.sqrt(np.clip(linalg.eigvalsh(0.5 * (product + product.T)), 0, None)))
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * trace_covmean)


def _as_stats(features, name: str) -> FeatureStats:
  stats = features if isinstance(features, FeatureStats) else FeatureStats.from_features(
      _features_2d(features, f'fid ({name})'))
  dim = stats.mean.shape[0]
  if stats.n < 2:
    raise EgmError(f'FID needs at least 2 samples per set to estimate a covariance, but {name} '
                   f'has {stats.n}. Evaluate more samples (10,000 or more is standard).')
  if stats.n <= dim:
    warnings.warn(
        f'FID: {name} has {stats.n} samples for {dim}-dimensional features, so its covariance '
        f'has rank < {dim} and the score is biased upwards and not comparable with scores from '
        f'more samples. Use more than {dim} samples (10,000 or more is standard).')
  return stats


def fid(features_a, features_b) -> float:
  """Frechet distance between feature sets (N, D), or `FeatureStats`, of two image sets."""
  a, b = _as_stats(features_a, 'set a'), _as_stats(features_b, 'set b')
  return frechet_distance(a.mean, a.cov, b.mean, b.cov)


def _polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 between equal-size sets (m, d)."""
  m, d = x.shape
  k_xx = (x @ x.T / d + 1) ** 3
  k_yy = (y @ y.T / d + 1) ** 3
  k_xy = (x @ y.T / d + 1) ** 3
  within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
  return float(within - 2 * k_xy.mean())


def kid(features_a, features_b, num_subsets: int = 100, subset_size: int = 1000,
        rng: np.random.Generator | int | None = 0) -> tuple[float, float]:
  """Kernel Inception Distance: mean and std over subsets of the unbiased polynomial MMD^2.

  Each subset draws `subset_size` rows of each set without replacement. The estimate is
  unbiased, so it can be negative when the sets come from one distribution.
  """
  a = _features_2d(features_a, 'kid (set a)')
  b = _features_2d(features_b, 'kid (set b)')
  if a.shape[1] != b.shape[1]:
    raise EgmError(f'kid got features of dimensions {a.shape[1]} and {b.shape[1]}; both sets '
                   'must come from the same feature network.')
  smallest = min(a.shape[0], b.shape[0])
  if subset_size < 2 or subset_size > smallest:
    raise EgmError(f'kid needs 2 <= subset_size <= samples per set, but subset_size is '
                   f'{subset_size} and the sets have {a.shape[0]} and {b.shape[0]} samples. '
                   'Lower subset_size or evaluate more samples.')
  if num_subsets < 1:
    raise EgmError(f'kid needs num_subsets >= 1, got {num_subsets}.')
  rng = np.random.default_rng(rng)
  values = [_polynomial_mmd2(a[rng.choice(a.shape[0], subset_size, replace=False)],
                             b[rng.choice(b.shape[0], subset_size, replace=False)])
            for _ in range(num_subsets)]
  return float(np.mean(values)), float(np.std(values))


def inception_score(logits, splits: int = 10) -> tuple[float, float]:
  """exp(E_x KL(p(y|x) || p(y))) over `splits` contiguous chunks of logits (N, C): mean, std."""
  logits = _features_2d(logits, 'inception_score')
  n = logits.shape[0]
  if splits < 1 or n < splits:
    raise EgmError(f'inception_score splits {n} samples into {splits} parts, which needs '
                   f'1 <= splits <= samples. Evaluate more samples (50,000 is standard) or '
                   'lower splits.')
  log_p = special.log_softmax(logits, axis=1)
  scores = []
  for part in np.array_split(log_p, splits):
    log_marginal = special.logsumexp(part, axis=0) - np.log(part.shape[0])
    kl = np.sum(np.exp(part) * (part - log_marginal), axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  d = (x * x).sum(1)[:, None] - 2 * x @ y.T + (y * y).sum(1)[None, :]
  return np.maximum(d, 0)


def _knn_radii(x: np.ndarray, k: int, batch_size: int) -> np.ndarray:
  """Squared distance of each row of x to its k-th nearest other row."""
  return np.concatenate([
      np.partition(_squared_distances(x[i:i + batch_size], x), k, axis=1)[:, k]
      for i in range(0, x.shape[0], batch_size)])


def _coverage(points: np.ndarray, manifold: np.ndarray, radii: np.ndarray,
              batch_size: int) -> float:
  """Fraction of points inside some ball (manifold row, radius) of the k-NN manifold."""
  inside = [np.any(_squared_distances(points[i:i + batch_size], manifold) <= radii[None], axis=1)
            for i in range(0, points.shape[0], batch_size)]
  return float(np.concatenate(inside).mean())


def precision_recall(real_features, fake_features, k: int = 3,
                     batch_size: int = 1000) -> tuple[float, float]:
  """Improved precision and recall (Kynkaenniemi et al. 2019) with k-NN manifolds.

  precision: fraction of fake samples inside the real manifold (union of balls around each
  real sample reaching its k-th nearest real neighbour); recall: the converse. Distances are
  computed in row batches of `batch_size` (float32).
  """
  real = _features_2d(real_features, 'precision_recall (real)').astype(np.float32)
  fake = _features_2d(fake_features, 'precision_recall (fake)').astype(np.float32)
  if real.shape[1] != fake.shape[1]:
    raise EgmError(f'precision_recall got features of dimensions {real.shape[1]} and '
                   f'{fake.shape[1]}; both sets must come from the same feature network.')
  smallest = min(real.shape[0], fake.shape[0])
  if k < 1 or k >= smallest:
    raise EgmError(f'precision_recall needs 1 <= k < samples per set, but k is {k} and the '
                   f'sets have {real.shape[0]} (real) and {fake.shape[0]} (fake) samples. '
                   'Evaluate more samples or lower k.')
  real_radii = _knn_radii(real, k, batch_size)
  fake_radii = _knn_radii(fake, k, batch_size)
  return (_coverage(fake, real, real_radii, batch_size),
          _coverage(real, fake, fake_radii, batch_size))


class _Progress:
  """A one-line stderr progress bar: count/total, rate, elapsed time."""

  def __init__(self, total: int, desc: str, enabled: bool):
    self.total, self.desc, self.enabled = total, desc, enabled
    self.start = self.last = time.perf_counter()

  def update(self, count: int, final: bool = False) -> None:
    now = time.perf_counter()
    if not self.enabled or (not final and now - self.last < _PROGRESS_INTERVAL_S):
      return
    self.last = now
    elapsed = now - self.start
    rate = count / elapsed if elapsed > 0 else 0.0
    sys.stderr.write(f'\r{self.desc}: {count}/{self.total} ({rate:.1f}/s, {elapsed:.0f}s)'
                     + ('\n' if final else ''))
    sys.stderr.flush()


def _batch_images(batch) -> np.ndarray:
  return np.asarray(batch['x'] if isinstance(batch, dict) else batch)


def extract_features(feature_fn: Callable, batches: Iterable, num_examples: int,
                     progress: bool = True, desc: str = 'features'):
  """Streams image batches through a jitted `feature_fn`; returns its outputs for num_examples.

  Args:
    feature_fn: images (B, H, W, C) -> array (B, ...) or a pytree of such arrays.
    batches: iterable of images (B, H, W, C) in [-1, 1], or of dicts holding them under 'x'.
      Every batch is padded to the size of the first, so `feature_fn` compiles once.
    num_examples: examples to take; the last batch used is truncated.
    progress: show a progress line on stderr.
    desc: the progress line's label.

  Returns:
    feature_fn's output structure with numpy arrays of leading dimension num_examples.
  """
  if num_examples < 1:
    raise EgmError(f'extract_features needs num_examples >= 1, got {num_examples}.')
  bar = _Progress(num_examples, desc, progress)
  outputs, count, batch_size = [], 0, None
  for batch in batches:
    images = _batch_images(batch)[:num_examples - count]
    check_images(images, f'extract_features ({desc})')
    batch_size = batch_size or images.shape[0]
    real = images.shape[0]
    if real > batch_size:
      raise EgmError(f'extract_features got a batch of {real} images after a first batch of '
                     f'{batch_size}; only the last batch may be smaller.')
    if real < batch_size:
      pad = np.repeat(images[-1:], batch_size - real, axis=0)
      images = np.concatenate([images, pad])
    out = jax.device_get(feature_fn(images))
    outputs.append(jax.tree.map(lambda a, r=real: np.asarray(a)[:r], out))
    count += real
    bar.update(count)
    if count >= num_examples:
      break
  if count < num_examples:
    raise EgmError(f'extract_features ({desc}) asked for {num_examples} examples, but the batches '
                   f'held only {count}. Ask for at most {count}, or use a larger split.')
  bar.update(count, final=True)
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)


def stats_cache_key(feature_net: str, dataset: str, split: str, count: int,
                    seed: int = SUBSET_SEED) -> str:
  """A file-name-safe key naming feature network, dataset, split and the images' sample.

  The images are the seeded uniform sample of `count` examples of the split that
  `data.eval_batches` yields with `seed`; the 'uniform<seed>' part keeps these statistics apart
  from those of other subsets (caches of the first `count` images, as before, have none).
  """
  key = f'{feature_net}-{dataset}-{split}-{count}-uniform{seed}'
  return re.sub(r'[^A-Za-z0-9_.=-]+', '_', key)


def cached_dataset_stats(cache_dir: str, key: str,
                         compute_fn: Callable[[], FeatureStats]) -> FeatureStats:
  """Loads `<cache_dir>/<key>.npz`, or computes the statistics with compute_fn and stores them.

  `key` should name the feature network, dataset, split and count (see `stats_cache_key`).
  """
  path = os.path.join(cache_dir, f'{key}.npz')
  if os.path.exists(path):
    return FeatureStats.load(path)
  stats = compute_fn()
  if not isinstance(stats, FeatureStats):
    raise EgmError(f'cached_dataset_stats: compute_fn returned {type(stats).__name__}, not '
                   'FeatureStats. Return FeatureStats.from_features(features).')
  stats.save(path)
  return stats
