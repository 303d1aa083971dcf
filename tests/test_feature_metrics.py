"""Feature metrics against closed forms: FID, KID, Inception Score, precision/recall, streaming."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egm.errors import EgmError
from egm.evaluation import feature_metrics as fm


def _gaussian(rng, n, mean, std):
  return rng.normal(size=(n, len(mean))) * np.asarray(std) + np.asarray(mean)


def test_fid_of_a_set_against_itself_is_zero():
  x = _gaussian(np.random.default_rng(0), 500, np.zeros(8), np.ones(8))
  assert abs(fm.fid(x, x)) < 1e-6


def test_fid_between_gaussians_matches_the_closed_form():
  # Diagonal covariances commute: FID = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
  rng = np.random.default_rng(1)
  mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([1.0, 1.0, 0.5])
  var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
  a = _gaussian(rng, 200_000, mu1, np.sqrt(var1))
  b = _gaussian(rng, 200_000, mu2, np.sqrt(var2))
  assert fm.fid(a, b) == pytest.approx(expected, rel=0.02)
  assert fm.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(
      expected, rel=1e-10)


def test_frechet_distance_of_exact_moments_equals_the_formula():
  # General SPD covariances: tr((S1 S2)^1/2) = tr((S1^1/2 S2 S1^1/2)^1/2), via eigh.
  rng = np.random.default_rng(2)
  d = 5
  m1, m2 = rng.normal(size=(d, d)), rng.normal(size=(d, d))
  s1, s2 = m1 @ m1.T + 0.1 * np.eye(d), m2 @ m2.T + 0.1 * np.eye(d)
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)

  def sqrt_psd(s):
    w, v = np.linalg.eigh(s)
    return v @ np.diag(np.sqrt(np.maximum(w, 0))) @ v.T

  root1 = sqrt_psd(s1)
  expected = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) -
              2 * np.trace(sqrt_psd(root1 @ s2 @ root1)))
  assert fm.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_handles_singular_covariances():
  s = np.diag([1.0, 0.0, 0.0])
  assert fm.frechet_distance(np.zeros(3), s, np.ones(3), s) == pytest.approx(3.0, abs=1e-4)


def _mmd2_by_loops(x, y):
  """Unbiased MMD^2 with the cubic polynomial kernel, written out term by term."""
  m, d = x.shape
  k = lambda u, v: (u @ v / d + 1) ** 3
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
  return xx + yy - 2 * xy


def test_kid_subset_equals_the_explicit_unbiased_estimator():
  rng = np.random.default_rng(3)
  x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 0.5
  mean, std = fm.kid(x, y, num_subsets=1, subset_size=6)
  assert mean == pytest.approx(_mmd2_by_loops(x, y), rel=1e-10)
  assert std == 0.0


def test_kid_is_unbiased_on_identical_distributions_and_positive_when_shifted():
  rng = np.random.default_rng(4)
  a, b = _gaussian(rng, 4000, np.zeros(8), np.ones(8)), _gaussian(rng, 4000, np.zeros(8),
                                                                  np.ones(8))
  num_subsets = 400
  mean, std = fm.kid(a, b, num_subsets=num_subsets, subset_size=100, rng=0)
  assert abs(mean) < 4 * std / np.sqrt(num_subsets)
  values = [fm.kid(a, b, num_subsets=1, subset_size=100, rng=s)[0] for s in range(20)]
  assert min(values) < 0  # Unbiased: negative estimates occur.
  shifted_mean, shifted_std = fm.kid(a, b + 0.5, num_subsets=50, subset_size=100)
  assert shifted_mean > 10 * shifted_std / np.sqrt(50) and shifted_mean > 10 * abs(mean)


def test_inception_score_closed_forms():
  assert fm.inception_score(np.zeros((100, 10)), splits=10) == pytest.approx((1.0, 0.0))
  classes = 7
  confident = 100.0 * np.eye(classes)[np.arange(5 * 4 * classes) % classes]
  mean, std = fm.inception_score(confident, splits=5)
  assert mean == pytest.approx(classes, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)


def test_precision_recall_identical_and_far_apart():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(300, 16))
  assert fm.precision_recall(x, x, k=3, batch_size=64) == (1.0, 1.0)
  far = rng.normal(size=(200, 16)) + 100.0
  assert fm.precision_recall(x, far, k=3) == (0.0, 0.0)
  half = np.concatenate([x[:100] + 1e-3, far[:100]])
  precision, recall = fm.precision_recall(x, half, k=3)
  assert precision == pytest.approx(0.5) and recall < 0.9


def test_streaming_stats_equal_one_shot_stats(tmp_path):
  x = np.random.default_rng(6).normal(size=(257, 5)) * 3 + 7
  stats = fm.FeatureStats.empty(5)
  for start, stop in itertools.pairwise([0, 1, 2, 50, 150, 256, 257]):
    stats.update(x[start:stop])
  assert stats.n == 257
  np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
  np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-10)
  stats.save(str(tmp_path / 'stats.npz'))
  loaded = fm.FeatureStats.load(str(tmp_path / 'stats.npz'))
  assert loaded.n == 257 and np.array_equal(loaded.cov, stats.cov)
  assert fm.fid(stats, x) == pytest.approx(0.0, abs=1e-8)


def test_extract_features_pads_the_last_batch_and_compiles_once(capsys):
  traces = []

  @jax.jit
  def feature_fn(images):
    traces.append(images.shape)
    return {'mean': jnp.mean(images, axis=(1, 2)), 'max': jnp.max(images, axis=(1, 2, 3))}

  images = np.random.default_rng(7).uniform(-1, 1, (11, 4, 4, 3)).astype(np.float32)
  batches = [{'x': images[i:i + 4]} for i in range(0, 11, 4)]
  out = fm.extract_features(feature_fn, batches, num_examples=10, desc='test')
  assert len(traces) == 1 and out['mean'].shape == (10, 3) and out['max'].shape == (10,)
  np.testing.assert_allclose(out['mean'], images[:10].mean(axis=(1, 2)), rtol=1e-6)
  assert '10/10' in capsys.readouterr().err


def test_cached_dataset_stats_computes_once(tmp_path):
  calls = []

  def compute():
    calls.append(1)
    return fm.FeatureStats.from_features(np.arange(12.0).reshape(4, 3))

  key = fm.stats_cache_key('fashion_classifier', 'idx:/data/fashion mnist', 'test', 4)
  assert '/' not in key and ' ' not in key
  first = fm.cached_dataset_stats(str(tmp_path), key, compute)
  second = fm.cached_dataset_stats(str(tmp_path), key, compute)
  assert len(calls) == 1 and np.array_equal(first.cov, second.cov)


def test_bad_inputs_raise_clear_errors():
  rng = np.random.default_rng(8)
  x = rng.normal(size=(20, 4))
  identity = jax.jit(lambda im: im.reshape(im.shape[0], -1))
  with pytest.raises(EgmError, match=r'\[-1, 1\].*\[0, 255\]'):
    bytes_ = np.linspace(0.0, 255.0, 96).reshape(2, 4, 4, 3)
    fm.extract_features(identity, [bytes_], num_examples=2)
  with pytest.raises(EgmError, match='held only 4'):
    fm.extract_features(identity, [np.zeros((4, 2, 2, 1))], num_examples=8, progress=False)
  with pytest.raises(EgmError, match='subset_size is 50'):
    fm.kid(x, x, subset_size=50)
  with pytest.raises(EgmError, match='k is 20'):
    fm.precision_recall(x, x, k=20)
  with pytest.raises(EgmError, match='at least 2 samples'):
    fm.fid(x[:1], x)
  with pytest.warns(UserWarning, match='rank'):
    fm.fid(x[:4], x)
  with pytest.raises(EgmError, match='splits'):
    fm.inception_score(x[:5], splits=10)
  with pytest.raises(EgmError, match='dimensions 4 and 3'):
    fm.kid(x, x[:, :3], subset_size=10)
  with pytest.raises(EgmError, match='NaN'):
    fm.fid(np.full((5, 2), np.nan), x[:, :2])


def test_frechet_distance_matches_scipy_sqrtm_with_a_singular_covariance():
  """The eigendecomposition form equals the sqrtm formula of the reference implementations."""
  from scipy import linalg
  rng = np.random.default_rng(5)
  d = 40
  a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d // 2))
  cov1, cov2 = a @ a.T / d, b @ b.T / d  # cov2 has rank d/2
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  reference = ((mu1 - mu2) @ (mu1 - mu2) + np.trace(cov1) + np.trace(cov2)
               - 2 * np.trace(linalg.sqrtm(cov1 @ cov2).real))
  np.testing.assert_allclose(fm.frechet_distance(mu1, cov1, mu2, cov2), reference, rtol=1e-6)
