"""Moment checks of samplers against Gaussian laws, shared by the sampling tests."""
import functools

import jax
import numpy as np
import scipy.linalg


def cov_standard_errors(cov, n):
  """Standard errors of the sample covariance of n draws from N(., cov)."""
  diag = np.diag(cov)
  return np.sqrt((np.outer(diag, diag) + cov**2) / n)


def moment_errors(samples, mean, cov):
  """Max mean and covariance errors of (N, D) samples, in standard errors.

  Standard errors are those of N independent draws from N(mean, cov).
  """
  samples = np.asarray(samples, np.float64)
  n = samples.shape[0]
  mean_z = np.abs(samples.mean(0) - mean) / np.sqrt(np.diag(cov) / n)
  cov_z = (np.abs(np.cov(samples, rowvar=False) - cov)
           / cov_standard_errors(cov, n))
  return mean_z.max(), cov_z.max()


def ula_stationary_cov(precision, delta):
  """Exact stationary covariance of x <- x - delta^2/2 P (x - mu) + delta eps.

  Solves the discrete Lyapunov equation S = A S A^T + delta^2 I, A = I - hP.
  """
  a = np.eye(len(precision)) - 0.5 * delta**2 * precision
  return scipy.linalg.solve_discrete_lyapunov(a, delta**2 * np.eye(len(a)))


def run_jitted(sampler, energy_fn, x0, key, **kwargs):
  """sampler(energy_fn, x0, key, **kwargs) as one compiled call."""
  return jax.jit(functools.partial(sampler, energy_fn, **kwargs))(x0, key)
