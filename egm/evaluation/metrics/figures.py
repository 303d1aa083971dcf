"""Figures in `<workdir>/eval/` (no numbers):

- `interpolations` (methods with `infer` and `generate`): `interpolations.png`, rows of
  G(linear paths between the encodings of two test images), the images at both ends; the
  test images are a seeded uniform sample;
- `neighbours`: `neighbours_pixel.png` (and `neighbours_<net>.png` with a feature network):
  each row a sample, then its nearest training images (L2 in pixel / feature space) among a
  seeded uniform sample of `eval.max_neighbour_examples`;
- `trajectories` (methods with a `trajectory`: a sampling chain of their own): `trajectories.png`,
  rows of the method's chains from their start (noise, buffer chains, generator proposals),
  columns the chain state at `eval.trajectory_frames` + 1 evenly spaced steps;
- `loss_curves`: `loss_curves.png`, every scalar of `metrics.jsonl` over steps.
"""
import os

import jax
import numpy as np

from egm.data.dataset import sample_indices
from egm.evaluation.registry import register_metric
from egm.figures import images, plots

_ROWS = 8  # examples shown per figure
_INTERPOLATION_STEPS = 8


@register_metric('interpolations', methods=('infer', 'generate'), kind='image', test=True)
def interpolations(ctx) -> dict:
  x = ctx.dataset.test.get(sample_indices(len(ctx.dataset.test), 2 * _ROWS))['x']
  rows = len(x) // 2
  z = np.asarray(jax.jit(ctx.method.infer)(ctx.state, x, jax.random.fold_in(ctx.key, 9)))
  t = np.linspace(0.0, 1.0, _INTERPOLATION_STEPS)[None, :, None]
  path = (1 - t) * z[:rows, None] + t * z[rows:2 * rows, None]  # (rows, steps, z)
  x_path = np.asarray(jax.jit(ctx.method.generate)(ctx.state, path.reshape(-1, z.shape[-1])))
  x_path = np.clip(x_path, -1, 1).reshape(rows, _INTERPOLATION_STEPS, *x.shape[1:])
  grid = np.concatenate([x[:rows, None], x_path, x[rows:2 * rows, None]], axis=1)
  images.save_image_grid(os.path.join(ctx.out_dir, 'interpolations.png'),
                         grid.reshape(-1, *x.shape[1:]), ncols=_INTERPOLATION_STEPS + 2)
  return {}


def _nearest(queries: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
  """Indices (Q, k) of the k nearest rows of keys (N, D) to each query (Q, D), squared L2."""
  d = (np.sum(queries ** 2, 1)[:, None] - 2 * queries @ keys.T + np.sum(keys ** 2, 1)[None])
  return np.argsort(d, axis=1)[:, :k]


def _save_neighbours(path: str, samples, train, sample_vecs, train_vecs, k: int) -> None:
  idx = _nearest(sample_vecs, train_vecs, k)
  grid = np.concatenate([samples[:, None], train[idx]], axis=1)
  images.save_image_grid(path, grid.reshape(-1, *samples.shape[1:]), ncols=k + 1)


@register_metric('neighbours', methods=('sample',), kind='image')
def neighbours(ctx) -> dict:
  k = ctx.config.eval.num_neighbours
  samples = next(ctx.sample_batches(5, _ROWS))
  train = ctx.dataset.train.get(
      sample_indices(len(ctx.dataset.train), ctx.config.eval.max_neighbour_examples))['x']
  flat = lambda a: a.reshape(len(a), -1).astype(np.float64)
  _save_neighbours(os.path.join(ctx.out_dir, 'neighbours_pixel.png'), samples, train,
                   flat(samples), flat(train), k)
  if ctx.config.eval.feature_workdir:
    net = ctx.feature_net
    batch = ctx.config.eval.batch_size
    train_features = np.concatenate([net.features(train[s:s + batch])
                                     for s in range(0, len(train), batch)])
    _save_neighbours(os.path.join(ctx.out_dir, f'neighbours_{net.name}.png'), samples, train,
                     net.features(samples).astype(np.float64), train_features.astype(np.float64), k)
  return {}


def _chain_frames(ctx, key, n: int, frames: int) -> np.ndarray:
  """States (frames + 1, n, ...) of the method's own sampling chain (its `trajectory`)."""
  trajectory = jax.jit(ctx.method.trajectory, static_argnums=(2, 3))
  return np.asarray(trajectory(ctx.state, key, n, frames))


@register_metric('trajectories', methods=('trajectory',), kind='image')
def trajectories(ctx) -> dict:
  frames = ctx.config.eval.trajectory_frames
  states = _chain_frames(ctx, jax.random.fold_in(ctx.key, 6), _ROWS, frames)
  grid = np.clip(np.nan_to_num(np.swapaxes(states, 0, 1)), -1, 1)  # (rows, frames + 1, ...)
  images.save_image_grid(os.path.join(ctx.out_dir, 'trajectories.png'),
                         grid.reshape(-1, *grid.shape[2:]), ncols=frames + 1)
  return {}


@register_metric('loss_curves')
def loss_curves(ctx) -> dict:
  path = os.path.join(ctx.workdir, 'metrics.jsonl')
  if os.path.exists(path):
    series = plots.read_metrics_jsonl(path)
    if series:
      plots.save_loss_curves(os.path.join(ctx.out_dir, 'loss_curves.png'), series)
  return {}
