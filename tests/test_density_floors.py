"""The floors of the 2-D density metrics: sample_tv_floor and density_tv_floor.

Each floor is the value of the same comparison for a model equal to the true distribution:
sample_tv compares an n-sample histogram with a near-exact true density, so its floor is
one noisy histogram against that reference (not two noisy histograms against each other,
which sit about sqrt(2) further apart); density_tv compares exp(-E)/Z with a 2M-sample
estimate, so its floor is that estimate's own error.
"""
import types

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.scipy.special import logsumexp
from scipy.special import ndtr

from egm import data
from egm.data.toy2d import EIGHT_GAUSSIAN_CENTRES
from egm.errors import EgmError
from egm.evaluation import density
from egm.evaluation.metrics.basic import density_metrics

EIGHT_GAUSSIAN_STD = 0.5 / 1.414  # as in egm/data/toy2d.py


def gaussian(rng, n):
  return rng.standard_normal((n, 2))


def gaussian_cell_masses(extent, size):
  """Exact masses (size, size) of N(0, I) in each grid cell."""
  mass = np.diff(ndtr(np.linspace(-extent, extent, size + 1)))
  return mass[:, None] * mass[None, :]


def test_sample_tv_floor_is_one_histogram_against_the_reference():
  extent, size, n = 3.0, 12, 20_000
  reference = density.true_density(gaussian, extent, size, n=1_000_000)
  floor = density.sample_tv_floor(gaussian, reference, extent, size, n)
  # The expected TV of n true samples against the reference, by independent Monte Carlo.
  one = [density.total_variation(
      density.histogram_density(gaussian(np.random.default_rng(1000 + i), n), extent, size),
      reference) for i in range(24)]
  error = np.std(one) / np.sqrt(len(one)) + np.std(one) / np.sqrt(4)  # MC + the floor's 4 draws
  assert abs(floor - np.mean(one)) < 2 * error
  # The old floor: two independent n-sample histograms, both noisy, about sqrt(2) apart.
  two = [density.total_variation(
      density.histogram_density(gaussian(np.random.default_rng(2000 + 2 * i), n), extent, size),
      density.histogram_density(gaussian(np.random.default_rng(2001 + 2 * i), n), extent, size))
         for i in range(12)]
  assert 1.3 < np.mean(two) / floor < 1.5


def test_density_tv_floor_is_the_reference_error():
  extent, size, n = 3.0, 24, 200_000
  reference = density.true_density(gaussian, extent, size, n=n)
  floor = density.density_tv_floor(gaussian, reference, extent, size, n=n)
  exact_error = density.total_variation(reference, gaussian_cell_masses(extent, size))
  assert 0 < floor < 0.05
  assert floor == pytest.approx(exact_error, rel=0.15)


def test_floors_check_their_arguments():
  reference = density.true_density(gaussian, 3.0, 8, n=1000)
  with pytest.raises(EgmError, match='draws'):
    density.sample_tv_floor(gaussian, reference, 3.0, 8, 100, draws=0)
  with pytest.raises(EgmError, match='same grid'):
    density.sample_tv_floor(gaussian, reference, 3.0, 9, 100)
  with pytest.raises(EgmError, match='same grid'):
    density.density_tv_floor(gaussian, reference, 3.0, 9, n=1000)


class ExactEightGaussians:
  """A 'model' equal to the true 8gaussians: exact samples and exact energy."""
  generative = True
  capabilities = ('energy',)

  def density_temperature(self):
    return 1.0

  def energy(self, state, x):
    del state
    sq = jnp.sum(jnp.square(x[:, None, :] - jnp.asarray(EIGHT_GAUSSIAN_CENTRES)[None]), -1)
    return -logsumexp(-sq / (2 * EIGHT_GAUSSIAN_STD ** 2), axis=1)


def test_exact_model_scores_at_the_floors(tmp_path):
  config = ml_collections.ConfigDict()
  config.eval = ml_collections.ConfigDict(dict(
      grid_extent=4.5, grid_size=100, sample_grid_size=20, num_tv_samples=20_000))
  exact_samples = lambda state, key, n: data.sample_toy2d(
      '8gaussians', np.random.default_rng(99), n)
  ctx = types.SimpleNamespace(
      method=ExactEightGaussians(), config=config, out_dir=str(tmp_path), state=None, key=None,
      jitted_sample=exact_samples, dataset=types.SimpleNamespace(toy2d='8gaussians'),
      exp=types.SimpleNamespace(init_state=lambda: None))
  results = density_metrics(ctx)
  assert 0 < results['sample_tv_floor'] < 0.1
  assert 0.8 < results['sample_tv'] / results['sample_tv_floor'] < 1.25
  assert 0 < results['density_tv_floor'] < 0.05
  assert 0.8 < results['density_tv'] / results['density_tv_floor'] < 1.5


class TemperedEightGaussians(ExactEightGaussians):
  """exp(−state · E_true): the true density at state 1, uniform on the grid at state 0."""
  generative = False

  def energy(self, state, x):
    return state * super().energy(None, x)


def _tempered_metrics(tmp_path, trained: float, initial: float) -> dict:
  config = ml_collections.ConfigDict()
  config.eval = ml_collections.ConfigDict(dict(grid_extent=4.5, grid_size=60))
  ctx = types.SimpleNamespace(
      method=TemperedEightGaussians(), config=config, out_dir=str(tmp_path), state=trained,
      key=None, dataset=types.SimpleNamespace(toy2d='8gaussians'),
      exp=types.SimpleNamespace(init_state=lambda: initial))
  return density_metrics(ctx)


def test_an_energy_further_from_the_truth_than_its_initial_one_is_reported(tmp_path, capsys):
  """density_tv_untrained is the initial energy's; a trained energy worse than it warns."""
  worse = _tempered_metrics(tmp_path, trained=0.0, initial=1.0)
  assert worse['density_tv_untrained'] < 0.05 < 0.5 < worse['density_tv']
  assert 'has not learned the density' in capsys.readouterr().out
  better = _tempered_metrics(tmp_path, trained=1.0, initial=0.0)
  assert better['density_tv'] < 0.05 < 0.5 < better['density_tv_untrained']
  assert 'has not learned' not in capsys.readouterr().out


class ColdEightGaussians(ExactEightGaussians):
  """T·E_true at temperature T: its model density exp(−E/T) is the true one."""
  generative = False

  def density_temperature(self):
    return 0.1

  def energy(self, state, x):
    return 0.1 * super().energy(None, x)


def test_the_density_is_taken_at_the_temperature_the_method_samples_at(tmp_path):
  config = ml_collections.ConfigDict()
  config.eval = ml_collections.ConfigDict(dict(grid_extent=4.5, grid_size=60))
  ctx = types.SimpleNamespace(
      method=ColdEightGaussians(), config=config, out_dir=str(tmp_path), state=None,
      key=None, dataset=types.SimpleNamespace(toy2d='8gaussians'),
      exp=types.SimpleNamespace(init_state=lambda: None))
  results = density_metrics(ctx)
  assert results['density_temperature'] == 0.1
  assert results['density_tv'] < 1.5 * results['density_tv_floor']  # exp(−E) at T = 1 is not
