"""Sample-quality metrics in a feature space, over `eval.num_fid_samples` samples and images.

- `feature_fid`: `fid_<net>`, `kid_<net>` (± `kid_<net>_std`) in the penultimate layer of the
  project classifier of `eval.feature_workdir`, named after it (e.g. fid_fashion_classifier);
- `feature_precision_recall`: `precision_<net>`, `recall_<net>` (k=3 nearest neighbours);
- `inception` (only with Inception weights): `fid_inception`, `kid_inception`,
  `inception_score` (± std) in the standard FID Inception-v3 pool3 / logits.
Real images are a seeded uniform sample of N training images (`ctx.real_batches`, the same in
every run); their FID statistics are cached (in the classifier's workdir, or in
~/.cache/egm/fid_stats for Inception) under a key naming the sample and the training split.
"""
import os

import numpy as np

from egm.data import cache
from egm.evaluation import feature_metrics as fm
from egm.evaluation import inception
from egm.evaluation.registry import register_metric

_KID_SUBSETS = 100
_PR_NEIGHBOURS = 3


def _batches(x: np.ndarray, batch_size: int):
  for start in range(0, len(x), batch_size):
    yield x[start:start + batch_size]


def _real_batches(ctx, n: int):
  return ctx.real_batches('train', max_examples=n)


def _train_split(ctx) -> str:
  """Names the training split's contents: data.holdout and data.max_examples change its rows."""
  shape = 'x'.join(map(str, ctx.image_shape))
  return f'train-holdout{ctx.config.data.holdout}-max{ctx.config.data.max_examples}-{shape}'


def _real_features(ctx, desc: str, feature_fn) -> np.ndarray:
  """Features (N, F) of the sample of N = eval.num_fid_samples training images (once per desc)."""
  n = ctx.num_fid_samples
  return ctx.once(('real', desc), lambda: fm.extract_features(
      feature_fn, _real_batches(ctx, n), n, desc=f'{desc} real'))


def _fake_features(ctx, desc: str, feature_fn) -> np.ndarray:
  """Features (N, F) of the shared model samples (once per desc)."""
  batch = ctx.config.eval.batch_size
  return ctx.once(('fake', desc), lambda: fm.extract_features(
      feature_fn, _batches(ctx.fid_samples, batch), len(ctx.fid_samples),
      desc=f'{desc} samples'))


def _distances(name: str, real, real_stats, fake) -> dict:
  kid_mean, kid_std = fm.kid(real, fake, num_subsets=_KID_SUBSETS,
                             subset_size=min(1000, len(real), len(fake)))
  return {f'fid_{name}': fm.fid(real_stats, fake), f'kid_{name}': kid_mean,
          f'kid_{name}_std': kid_std}


@register_metric('feature_fid', methods=('sample',), kind='image', features=True)
def feature_fid(ctx) -> dict:
  net = ctx.feature_net
  real = _real_features(ctx, net.name, net.features_fn)
  key = fm.stats_cache_key(f'{net.name}-step{net.step}', ctx.dataset.name, _train_split(ctx),
                           len(real))
  stats = fm.cached_dataset_stats(os.path.join(net.workdir, 'fid_stats'), key,
                                  lambda: fm.FeatureStats.from_features(real))
  return _distances(net.name, real, stats, _fake_features(ctx, net.name, net.features_fn))


@register_metric('feature_precision_recall', methods=('sample',), kind='image', features=True)
def feature_precision_recall(ctx) -> dict:
  net = ctx.feature_net
  precision, recall = fm.precision_recall(_real_features(ctx, net.name, net.features_fn),
                                          _fake_features(ctx, net.name, net.features_fn),
                                          k=_PR_NEIGHBOURS)
  return {f'precision_{net.name}': precision, f'recall_{net.name}': recall}


@register_metric('inception', methods=('sample',), kind='image', inception=True)
def inception_metrics(ctx) -> dict:
  apply = inception.inception_fn(inception.load_inception(ctx.inception_weights))
  real_pool = _real_features(ctx, 'inception', lambda x: apply(x)[0])
  fake_pool, fake_logits = fm.extract_features(
      apply, _batches(ctx.fid_samples, ctx.config.eval.batch_size), len(ctx.fid_samples),
      desc='inception samples')
  key = fm.stats_cache_key('inception', ctx.dataset.name, _train_split(ctx), len(real_pool))
  stats = fm.cached_dataset_stats(os.path.join(cache.cache_dir(), 'fid_stats'), key,
                                  lambda: fm.FeatureStats.from_features(real_pool))
  score, score_std = fm.inception_score(fake_logits, splits=min(10, len(fake_logits)))
  return {**_distances('inception', real_pool, stats, fake_pool),
          'inception_score': score, 'inception_score_std': score_std}
