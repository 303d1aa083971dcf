"""Densities of 2-D distributions on a square grid and distances between them.

A grid of `size` x `size` cells covers [-extent, extent]^2. Arrays of shape
(size, size) are indexed [row, column] = [y, x], with row 0 at y = -extent
and column 0 at x = -extent. Densities are cell masses (they sum to at most 1),
so distances between them do not depend on the cell area.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from egm.errors import EgmError


def _check_grid(extent: float, size: int) -> None:
  if extent <= 0 or size < 1:
    raise EgmError(
        f'A density grid needs extent > 0 and size >= 1, got extent={extent} '
        f'and size={size}. Pass the half-width of the square to cover and the '
        'number of cells per side.')


def grid_points(extent: float, size: int) -> tuple[np.ndarray, float]:
  """Cell centres (size*size, 2) float32 as (x, y), row-major in y; cell area.

  Point i * size + j is (x_j, y_i), matching arrays indexed [y, x].
  """
  _check_grid(extent, size)
  width = 2.0 * extent / size
  centres = -extent + width * (np.arange(size) + 0.5)
  y, x = np.meshgrid(centres, centres, indexing='ij')
  points = np.stack([x.ravel(), y.ravel()], axis=1).astype(np.float32)
  return points, width * width


def density_from_energy(energies: np.ndarray, cell_area: float) -> np.ndarray:
  """Cell masses (size, size) exp(-E) * cell_area / Z of energies (size*size,).

  The energies are those at grid_points' centres. Z is the midpoint-rule
  estimate of the normaliser over the grid, so the masses sum to 1 (the area
  cancels; it is kept so callers pass the grid's).
  """
  energies = np.asarray(energies, np.float64)
  size = int(round(np.sqrt(energies.size)))
  if energies.ndim != 1 or size * size != energies.size:
    raise EgmError(
        f'density_from_energy expects one energy per cell of a square grid, a '
        f'flat array of size*size values, but got shape {energies.shape}. '
        'Evaluate the energy at grid_points(extent, size) (for example with '
        'energy_on_grid) and pass the flat result.')
  if not np.all(np.isfinite(energies)):
    bad = int(np.sum(~np.isfinite(energies)))
    raise EgmError(
        f'The energies contain NaN or inf at {bad} of {energies.size} grid '
        'points, so exp(-E) cannot be normalised. The energy network has '
        'probably diverged; evaluate an earlier checkpoint or lower the '
        'learning rate.')
  if cell_area <= 0:
    raise EgmError(
        f'cell_area must be positive, got {cell_area}. Pass the area returned '
        'by grid_points.')
  unnormalised = np.exp(-(energies - energies.min())) * cell_area
  return (unnormalised / unnormalised.sum()).reshape(size, size)


def histogram_density(points: np.ndarray, extent: float,
                      size: int) -> np.ndarray:
  """Fraction of points (n, 2) falling in each cell (size, size).

  Points outside the grid are dropped but still counted in n, so the result
  sums to the fraction of points inside the grid (below 1 when mass escapes).
  """
  points = np.asarray(points)
  if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] == 0:
    raise EgmError(
        f'histogram_density expects a non-empty array of 2-D points with '
        f'shape (n, 2), but got shape {points.shape}. Pass samples of a 2-D '
        'distribution, one (x, y) pair per row.')
  _check_grid(extent, size)
  counts, _, _ = np.histogram2d(
      points[:, 1], points[:, 0], bins=size,
      range=[[-extent, extent], [-extent, extent]])
  return counts / points.shape[0]


def _check_same_shape(p: np.ndarray, q: np.ndarray, name: str) -> None:
  if p.shape != q.shape:
    raise EgmError(
        f'{name} compares densities on the same grid, but got shapes '
        f'{p.shape} and {q.shape}. Compute both with the same extent and '
        'size.')


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
  """0.5 * sum |p - q| over the grid, in [0, 1] for masses p, q (size, size)."""
  p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
  _check_same_shape(p, q, 'total_variation')
  return float(0.5 * np.abs(p - q).sum())


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-12) -> float:
  """KL(p || q) in nats for masses p, q (size, size); eps guards empty cells."""
  p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
  _check_same_shape(p, q, 'kl_divergence')
  return float(np.sum(p * (np.log(p + eps) - np.log(q + eps))))


TRUE_DENSITY_SAMPLES = 2_000_000  # true samples behind true_density by default
TRUE_DENSITY_SEED = 123


def true_density(sampler: Callable[[np.random.Generator, int], np.ndarray],
                 extent: float, size: int, n: int = TRUE_DENSITY_SAMPLES,
                 seed: int = TRUE_DENSITY_SEED) -> np.ndarray:
  """Histogram (size, size) of n true samples, sampler(rng, n) -> (n, 2)."""
  return histogram_density(
      sampler(np.random.default_rng(seed), n), extent, size)


def sample_tv_floor(sampler: Callable[[np.random.Generator, int], np.ndarray],
                    reference: np.ndarray, extent: float, size: int, n: int,
                    draws: int = 4, seed: int = 11) -> float:
  """Mean TV between a histogram of n fresh true samples and `reference`.

  `reference` (size, size) is the true-density estimate that the model's
  n-sample histogram is scored against (true_density on the same grid). The
  result is the value a model that samples the true distribution exactly
  would get in that comparison, in expectation: the histogram's own sampling
  noise (plus the reference's, far smaller with 2M samples). It is the mean
  over `draws` independent draws, draw i from
  np.random.default_rng((seed, i)), which is independent of true_density's
  stream. Two n-sample histograms compared with each other would be about
  sqrt(2) further apart than this, since both are noisy.
  """
  if draws < 1:
    raise EgmError(
        f'sample_tv_floor averages over draws >= 1 histograms, got draws='
        f'{draws}. Pass a small positive number such as 4.')
  reference = np.asarray(reference)
  if reference.shape != (size, size):
    raise EgmError(
        f'sample_tv_floor needs the reference density on the same grid, shape '
        f'({size}, {size}), but got shape {reference.shape}. Compute it with '
        'true_density(sampler, extent, size).')
  tvs = [total_variation(
      histogram_density(sampler(np.random.default_rng((seed, i)), n), extent,
                        size), reference) for i in range(draws)]
  return float(np.mean(tvs))


def density_tv_floor(sampler: Callable[[np.random.Generator, int], np.ndarray],
                     reference: np.ndarray, extent: float, size: int,
                     n: int = TRUE_DENSITY_SAMPLES, seed: int = 321) -> float:
  """Sampling error of `reference`, TV(reference, exact cell masses), estimated.

  `reference` (size, size) is true_density(sampler, extent, size, n): a
  histogram of n true samples. A model density equal to the exact cell masses
  would score this TV against it, so a model's TV against the reference
  cannot be expected to fall below it (for a model independent of the
  reference's noise, whose per-cell errors are symmetric about zero, the
  expected |model - reference| in a cell is smallest when the model is exact).
  The exact masses are unknown in general; the estimate is
  TV(reference, other) / sqrt(2), with `other` a second, independent estimate
  made the same way (n samples, np.random.default_rng(seed)): the two errors
  are independent and equally large, so their difference is sqrt(2) times
  one of them. That holds where cells hold many samples (8gaussians, 200
  cells a side over [-4.5, 4.5]^2, 2M samples: 0.0305 estimated, 0.0308 exact);
  cells holding a few samples count less than they should, so if anything
  the floor is understated.
  """
  reference = np.asarray(reference)
  if reference.shape != (size, size):
    raise EgmError(
        f'density_tv_floor needs the reference density on the same grid, '
        f'shape ({size}, {size}), but got shape {reference.shape}. Compute it '
        'with true_density(sampler, extent, size).')
  other = true_density(sampler, extent, size, n=n, seed=seed)
  return float(total_variation(reference, other) / np.sqrt(2.0))


def energy_on_grid(energy_fn: Callable[[jnp.ndarray], jnp.ndarray],
                   extent: float, size: int, batch: int = 10_000) -> np.ndarray:
  """Energies (size*size,) of energy_fn: (b, 2) -> (b,) at the cell centres.

  Evaluates in batches of one fixed shape (the last is padded), so the jitted
  function compiles once.
  """
  points, _ = grid_points(extent, size)
  total = points.shape[0]
  batch = min(batch, total)
  fn = jax.jit(energy_fn)
  energies = []
  for start in range(0, total, batch):
    chunk = points[start:start + batch]
    valid = chunk.shape[0]
    chunk = np.pad(chunk, ((0, batch - valid), (0, 0)))
    out = np.asarray(fn(jnp.asarray(chunk)))
    if out.shape != (batch,):
      raise EgmError(
          f'energy_fn must map points of shape ({batch}, 2) to one energy per '
          f'point, shape ({batch},), but returned shape {out.shape}. Squeeze '
          'a trailing axis or sum per-example terms inside energy_fn.')
    energies.append(out[:valid])
  return np.concatenate(energies)
