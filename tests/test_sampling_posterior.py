"""z-space inference with egm.sampling: the latent posterior energy of a linear-Gaussian
generator, sampled by Langevin, against closed forms."""
import jax
import jax.numpy as jnp
import numpy as np

from egm import sampling
from gaussian_checks import moment_errors, run_jitted, ula_stationary_cov

Z_SCORE = 5.0  # Tolerances are this many standard errors of the estimate.


def test_latent_posterior_reaches_closed_form_gaussian():
  rng = np.random.default_rng(0)
  w = rng.normal(size=(6, 2))
  sigma = 0.5
  x = rng.normal(size=6)
  mask = np.array([1.0, 1, 1, 1, 0, 0])
  x_garbage = np.where(mask > 0, x, 100.0)  # Unobserved pixels: garbage.
  precision = w.T @ (mask[:, None] * w) / sigma**2 + np.eye(2)
  cov = np.linalg.inv(precision)
  mean = cov @ w.T @ (mask * x) / sigma**2
  generate = lambda z: z @ w.T.astype(np.float32)
  n = 10_000
  energy = sampling.latent_posterior_energy(
      generate, jnp.broadcast_to(x_garbage, (n, 6)).astype(jnp.float32),
      sigma, mask=jnp.asarray(mask, jnp.float32))
  z, info = run_jitted(sampling.mala, energy, jnp.zeros((n, 2)),
                       jax.random.key(4), n_steps=300, step_size=0.04)
  mean_z, cov_z = moment_errors(z, mean, cov)
  print(f'masked posterior via MALA: mean err {mean_z:.2f} se, cov err '
        f'{cov_z:.2f} se, acceptance {float(info.acceptance_rate.mean()):.3f}')
  assert mean_z < Z_SCORE and cov_z < Z_SCORE

  # Masked pixels do not contribute; without a mask the energy is the full
  # Gaussian negative log posterior.
  z = jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)
  masked = sampling.latent_posterior_energy(
      generate, jnp.broadcast_to(x, (5, 6)), sigma, mask=mask)(z)
  observed = sampling.latent_posterior_energy(
      lambda z: z @ w[:4].T, jnp.broadcast_to(x[:4], (5, 4)), sigma)(z)
  np.testing.assert_allclose(masked, observed, rtol=1e-5)
  residual = x - np.asarray(z) @ w.T
  full = (np.sum(residual**2, -1) / (2 * sigma**2)
          + 0.5 * np.sum(np.asarray(z)**2, -1))
  np.testing.assert_allclose(
      sampling.latent_posterior_energy(generate, jnp.broadcast_to(x, (5, 6)),
                                       sigma)(z), full, rtol=1e-5)


def test_langevin_on_latent_posterior_matches_discretised_law():
  rng = np.random.default_rng(1)
  w = rng.normal(size=(5, 3))
  sigma, delta, n = 0.7, 0.3, 10_000
  x = rng.normal(size=5)
  precision = w.T @ w / sigma**2 + np.eye(3)
  mean = np.linalg.solve(precision, w.T @ x / sigma**2)
  energy = sampling.latent_posterior_energy(
      lambda z: z @ w.T.astype(np.float32),
      jnp.broadcast_to(x, (n, 5)).astype(jnp.float32), sigma)
  z, _ = run_jitted(sampling.langevin, energy, jnp.zeros((n, 3)),
                    jax.random.key(5), n_steps=300, step_size=delta**2 / 2,
                    noise_scale=delta)
  mean_z, cov_z = moment_errors(z, mean, ula_stationary_cov(precision, delta))
  print(f'posterior via Langevin: mean err {mean_z:.2f} se, cov err vs exact '
        f'discretised law {cov_z:.2f} se')
  assert mean_z < Z_SCORE and cov_z < Z_SCORE


def test_posterior_langevin_with_a_preconditioner_and_a_shifted_prior_matches_its_law():
  """z <- z - h M dU + sqrt(2h M) eps on a linear-Gaussian posterior whose prior is N(c, I)
  (given as prior_energy): in w = z / sqrt(M) it is ULA on the precision sqrt(M) P sqrt(M),
  so z's stationary law is N(mean, sqrt(M) S_w sqrt(M)), S_w the discretised covariance."""
  rng = np.random.default_rng(2)
  w = rng.normal(size=(5, 3))
  sigma, delta, n = 0.7, 0.2, 10_000
  x, c = rng.normal(size=5), np.array([0.5, -1.0, 0.2])
  m = np.array([0.5, 2.0, 1.0])
  precision = w.T @ w / sigma**2 + np.eye(3)
  mean = np.linalg.solve(precision, w.T @ x / sigma**2 + c)
  root = np.sqrt(m)
  cov = root[:, None] * ula_stationary_cov(root[:, None] * precision * root, delta) * root
  prior = lambda z: 0.5 * jnp.sum(jnp.square(z - c.astype(np.float32)), -1)
  sample = jax.jit(lambda z0, key: sampling.posterior_langevin(
      lambda z: z @ w.T.astype(np.float32), jnp.broadcast_to(x, (n, 5)).astype(jnp.float32),
      z0, key, sigma=sigma, n_steps=1500, prior_energy=prior,
      preconditioner=jnp.asarray(m, jnp.float32), **sampling.delta_steps(delta)))
  z, info = sample(jnp.zeros((n, 3)), jax.random.key(6))
  mean_z, cov_z = moment_errors(z, mean, cov)
  print(f'preconditioned posterior: mean err {mean_z:.2f} se, cov err {cov_z:.2f} se')
  assert mean_z < Z_SCORE and cov_z < Z_SCORE
  assert info.energy.shape == (1500,)


def test_delta_steps_and_warm_start():
  steps = sampling.delta_steps(0.3)
  assert float(steps['step_size']) == np.float32(0.045) and steps['noise_scale'] == 0.3
  assert sampling.delta_steps(0.3, noise=False)['noise_scale'] == 0.0
  table = jnp.arange(12.0).reshape(6, 2)
  np.testing.assert_array_equal(sampling.warm_start(None, (2, 2), table, jnp.array([4, 1])),
                                [[8, 9], [2, 3]])
  fresh = sampling.warm_start(jax.random.key(0), (3, 2))
  assert fresh.shape == (3, 2) and float(jnp.std(fresh)) > 0
