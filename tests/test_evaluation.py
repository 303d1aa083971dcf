"""Tests for egm.evaluation: 2-D density metrics and PNG figures."""

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from scipy.special import ndtr

from egm import evaluation
from egm.errors import EgmError
from egm.figures import images as figure_images


def gaussian_cell_masses(extent, size, mean=(0.0, 0.0), std=1.0):
  """Exact masses (size, size) [y, x] of N(mean, std^2 I) in each grid cell."""
  edges = np.linspace(-extent, extent, size + 1)
  mass_x = np.diff(ndtr((edges - mean[0]) / std))
  mass_y = np.diff(ndtr((edges - mean[1]) / std))
  return mass_y[:, None] * mass_x[None, :]


def test_grid_points_layout():
  points, area = evaluation.grid_points(2.0, 4)
  assert points.shape == (16, 2) and points.dtype == np.float32
  assert area == pytest.approx(1.0)
  centres = np.array([-1.5, -0.5, 0.5, 1.5])
  for i in range(4):
    for j in range(4):
      np.testing.assert_allclose(points[i * 4 + j], [centres[j], centres[i]])


def test_density_from_energy_matches_gaussian_cell_masses():
  extent, size = 5.0, 100
  points, area = evaluation.grid_points(extent, size)
  energies = 0.5 * np.sum(points.astype(np.float64) ** 2, axis=1) + 1000.0
  density = evaluation.density_from_energy(energies, area)
  assert density.shape == (size, size)
  assert density.sum() == pytest.approx(1.0)
  exact = gaussian_cell_masses(extent, size)
  assert evaluation.total_variation(density, exact) < 1e-2


def test_density_orientation_rows_are_y():
  extent, size = 4.0, 40
  points, area = evaluation.grid_points(extent, size)
  mode = np.array([2.1, -1.1])  # A cell centre, away from cell edges.
  energies = np.sum((points - mode) ** 2, axis=1)
  density = evaluation.density_from_energy(energies, area)
  row, col = np.unravel_index(np.argmax(density), density.shape)
  width = 2 * extent / size
  assert -extent + width * (col + 0.5) == pytest.approx(mode[0])
  assert -extent + width * (row + 0.5) == pytest.approx(mode[1])
  hist = evaluation.histogram_density(mode[None], extent, size)
  assert np.unravel_index(np.argmax(hist), hist.shape) == (row, col)


def test_energy_on_grid_batches_and_pads():
  extent, size = 3.0, 7
  points, _ = evaluation.grid_points(extent, size)
  energies = evaluation.energy_on_grid(
      lambda x: jnp.sum(x ** 2, axis=-1), extent, size, batch=10)
  assert energies.shape == (size * size,)
  np.testing.assert_allclose(energies, np.sum(points ** 2, axis=1), rtol=1e-6)


def test_energy_on_grid_rejects_wrong_output_shape():
  with pytest.raises(EgmError, match='one energy per point'):
    evaluation.energy_on_grid(lambda x: x, 1.0, 4)


def test_histogram_density_converges_to_gaussian():
  extent, size = 4.0, 32
  exact = gaussian_cell_masses(extent, size)
  rng = np.random.default_rng(0)
  distances = [
      evaluation.total_variation(
          evaluation.histogram_density(rng.standard_normal((n, 2)), extent,
                                       size), exact)
      for n in (10_000, 100_000, 1_000_000)]
  assert distances[0] > distances[1] > distances[2]
  assert distances[2] < 0.02


def test_histogram_density_counts_escaped_mass():
  points = np.array([[0.1, 0.1], [0.2, -0.3], [5.0, 0.0], [0.0, -7.0]])
  density = evaluation.histogram_density(points, 1.0, 8)
  assert density.sum() == pytest.approx(0.5)


def test_true_density_is_reproducible_histogram():
  sampler = lambda rng, n: rng.standard_normal((n, 2))
  a = evaluation.true_density(sampler, 4.0, 16, n=50_000, seed=1)
  b = evaluation.true_density(sampler, 4.0, 16, n=50_000, seed=1)
  np.testing.assert_array_equal(a, b)
  assert evaluation.total_variation(a, gaussian_cell_masses(4.0, 16)) < 0.05


def test_total_variation_extremes():
  p = gaussian_cell_masses(4.0, 16)
  assert evaluation.total_variation(p, p) == 0.0
  left = np.zeros((4, 4))
  left[:, :2] = 1 / 8
  assert evaluation.total_variation(left, left[:, ::-1]) == pytest.approx(1.0)


def test_kl_divergence_matches_closed_form():
  extent, size, mean, std = 10.0, 200, (0.5, -0.3), 1.2
  p = gaussian_cell_masses(extent, size)
  q = gaussian_cell_masses(extent, size, mean, std)
  d = 2
  closed = (d * np.log(std) + (d + np.sum(np.square(mean))) / (2 * std ** 2)
            - d / 2)
  assert evaluation.kl_divergence(p, q) == pytest.approx(closed, rel=1e-2)
  assert evaluation.kl_divergence(p, p) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize('fn', [evaluation.total_variation,
                                evaluation.kl_divergence])
def test_metrics_reject_mismatched_shapes(fn):
  with pytest.raises(EgmError, match=r'shapes \(4, 4\) and \(8, 8\)'):
    fn(np.ones((4, 4)) / 16, np.ones((8, 8)) / 64)


def test_density_from_energy_rejects_bad_input():
  with pytest.raises(EgmError, match='square grid'):
    evaluation.density_from_energy(np.zeros(10), 1.0)
  with pytest.raises(EgmError, match='NaN or inf at 1 of 4'):
    evaluation.density_from_energy(np.array([0.0, np.nan, 1.0, 2.0]), 1.0)


def test_histogram_density_rejects_bad_points():
  with pytest.raises(EgmError, match=r'shape \(n, 2\)'):
    evaluation.histogram_density(np.zeros((5, 3)), 1.0, 4)


def test_image_grid_layout_and_pixel_values():
  n, h, w, ncols, pad = 5, 2, 3, 2, 1
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (n, h, w, 1)).astype(np.float32)
  images[0] = -1.0
  images[1] = 1.0
  grid = evaluation.image_grid(images, ncols=ncols, pad=pad)
  assert grid.dtype == np.uint8
  assert grid.shape == (3 * (h + pad) + pad, 2 * (w + pad) + pad, 1)
  for k in range(n):
    top = pad + (k // ncols) * (h + pad)
    left = pad + (k % ncols) * (w + pad)
    block = grid[top:top + h, left:left + w]
    np.testing.assert_array_equal(
        block, np.round((images[k] + 1) * 127.5).astype(np.uint8))
  assert np.all(grid[pad:pad + h, pad:pad + w] == 0)
  assert np.all(grid[pad:pad + h, 2 * pad + w:2 * pad + 2 * w] == 255)


def test_image_grid_default_columns_rgb():
  grid = evaluation.image_grid(np.zeros((10, 4, 4, 3)), pad=0)
  assert grid.shape == (3 * 4, 4 * 4, 3)


@pytest.mark.parametrize('channels,mode', [(1, 'L'), (3, 'RGB')])
def test_save_image_grid_round_trip(tmp_path, channels, mode):
  images = np.random.default_rng(1).uniform(-1, 1, (6, 5, 7, channels))
  path = tmp_path / 'nested' / 'dir' / 'grid.png'
  evaluation.save_image_grid(path, images, ncols=3)
  factor = figure_images.enlargement(5)  # 5x7 images are enlarged to >= 48 px tiles
  expected = evaluation.image_grid(np.repeat(np.repeat(images, factor, 1), factor, 2), ncols=3)
  with Image.open(path) as image:
    assert image.format == 'PNG' and image.mode == mode
    assert image.size[0] == expected.shape[1] and image.size[1] > expected.shape[0]
    pixels = np.asarray(image)[-expected.shape[0]:]  # under the caption band
  np.testing.assert_array_equal(pixels.reshape(expected.shape), expected)


def test_image_grid_errors():
  with pytest.raises(EgmError, match=r'in \[-1, 1\].*range over \[0, 255\]'):
    evaluation.image_grid(np.linspace(0, 255, 4).reshape(1, 2, 2, 1))
  with pytest.raises(EgmError, match=r'\(N, H, W, C\).*\(2, 2\)'):
    evaluation.image_grid(np.zeros((2, 2)))
  with pytest.raises(EgmError, match='1 \\(greyscale\\) or 3 \\(RGB\\).*got 4'):
    evaluation.image_grid(np.zeros((1, 2, 2, 4)))
  evaluation.image_grid(np.full((1, 2, 2, 1), 1.0005))  # Within tolerance.


def test_save_points_png_y_points_up(tmp_path):
  path = tmp_path / 'points.png'
  evaluation.save_points_png(path, np.array([[1.0, 1.0]]), extent=2.0,
                             size=64)
  with Image.open(path) as image:
    assert image.mode == 'RGB' and image.size[0] == 64 and image.size[1] > 64
    pixels = np.asarray(image)[-64:]  # under the caption band
  marked = np.argwhere(np.any(pixels != 255, axis=-1))
  assert len(marked) > 0
  assert np.all(marked[:, 0] < 32) and np.all(marked[:, 1] >= 32)


def test_save_points_png_background_y_up(tmp_path):
  density = np.zeros((8, 8))
  density[0, 0] = 1.0  # Lowest y, lowest x: bottom-left corner.
  path = tmp_path / 'heat.png'
  evaluation.save_points_png(path, np.zeros((0, 2)), 1.0, size=32,
                             background_density=density)
  pixels = np.asarray(Image.open(path)).astype(int)[-32:]  # under the caption band
  assert pixels[-1, 0].sum() < pixels[0, 0].sum()
  assert pixels[0, -1].tolist() == [255, 255, 255]
  with pytest.raises(EgmError, match='finite 2-D array'):
    evaluation.save_points_png(path, np.zeros((1, 2)), 1.0,
                               background_density=np.zeros((2, 8, 8)))
