"""Metropolis-adjusted Langevin (MALA): Langevin proposals with an MH test.

The proposal is x' = x - step_size * dE/dx + noise_scale * eps; each example
is accepted with probability min(1, exp((E(x) - E(x')) / T + log q(x | x') -
log q(x' | x))) using the exact Gaussian proposal densities, so the chain
targets exp(-E / T) at temperature T (default 1) for any step size and noise
scale (the default noise scale sqrt(2 * T * step_size) is standard MALA on
E / T). `adapt_step_size` tunes the step on a pilot run towards a target
acceptance.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from egm.errors import EgmError
from egm.sampling import schedules
from egm.sampling.langevin import init_state
from egm.sampling.langevin import run_chain
from egm.sampling.langevin import sum_per_example


def mala_kernel(energy_fn, step_size, noise_scale, temperature=1.0):
  """One MH-adjusted step: kernel(state, key) -> (state, acceptance (B,)).

  The step targets exp(-E / temperature); acceptance is each example's
  acceptance probability min(1, ratio).
  """

  def kernel(state, key):
    noise_key, accept_key = jax.random.split(key)
    x = state.position
    noise = jax.random.normal(noise_key, x.shape, x.dtype)
    proposal = init_state(energy_fn,
                          x - step_size * state.grad + noise_scale * noise)
    # log q(x' | x) = -|eps|^2 / 2 and log q(x | x'), constants dropped.
    log_forward = -0.5 * sum_per_example(jnp.square(noise))
    backward = x - proposal.position + step_size * proposal.grad
    log_backward = -sum_per_example(jnp.square(backward)) / (
        2 * jnp.square(noise_scale))
    log_ratio = ((state.energy - proposal.energy) / temperature + log_backward
                 - log_forward)
    log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
    uniform = jax.random.uniform(accept_key, log_ratio.shape, log_ratio.dtype)
    accept = jnp.log(uniform) < log_ratio

    def select(new, old):
      return jnp.where(accept.reshape(accept.shape + (1,) * (new.ndim - 1)),
                       new, old)

    return (jax.tree.map(select, proposal, state),
            jnp.exp(jnp.minimum(log_ratio, 0)))

  return kernel


def _check_temperature(temperature):
  host = schedules.concrete_or_none(temperature)
  if host is not None and np.any(host <= 0):
    raise EgmError(
        f'temperature must be positive at every step, got minimum '
        f'{float(np.min(host))}. The chain targets exp(-E / temperature): '
        f'pass values > 0 (1 samples exp(-E) itself).')


def mala(energy_fn, x0, key, *, n_steps, step_size, noise_scale=None,
         temperature=1.0, stop_gradient=False, remat=False):
  """Runs n_steps of MALA on exp(-E / temperature) from x0 (B, ...).

  See `langevin` for the arguments; temperature is a positive scalar or an
  (n_steps,) schedule. noise_scale defaults to sqrt(2 * temperature *
  step_size) at each step. Returns (position (B, ...), info) with
  info.acceptance_rate the mean acceptance probability per step.
  """
  n_steps = schedules.check_n_steps(n_steps)
  dtype = jnp.result_type(x0)
  _check_temperature(temperature)
  temperature = schedules.as_schedule('temperature', temperature, n_steps,
                                      dtype)
  step_size = schedules.as_schedule('step_size', step_size, n_steps, dtype,
                                    positive=noise_scale is None)
  if noise_scale is None:
    noise_scale = jnp.sqrt(2 * temperature * step_size)
  noise_scale = schedules.as_schedule('noise_scale', noise_scale, n_steps,
                                      dtype, positive=True)

  def step(state, key, step_size, noise_scale, temperature):
    return mala_kernel(energy_fn, step_size, noise_scale, temperature)(state,
                                                                       key)

  return run_chain(energy_fn, step, x0, key,
                   (step_size, noise_scale, temperature), n_steps,
                   stop_gradient=stop_gradient, remat=remat)


def adapt_step_size(energy_fn, x0, key, *, n_steps, step_size,
                    target_acceptance, temperature=1.0, rate=1.0):
  """A MALA step size whose mean acceptance on exp(-E / T) is near the target.

  Runs an n_steps pilot chain from x0 (B, ...) with noise sqrt(2 * T * h),
  starting at h = step_size and moving log h by rate * (acceptance -
  target_acceptance) after each step (Robbins-Monro; acceptance is the batch
  mean of min(1, ratio)); returns the geometric mean of h over the pilot's
  second half, a () array. temperature is a positive scalar. No gradients
  flow to x0 or to parameters closed over by energy_fn.
  """
  n_steps = schedules.check_n_steps(n_steps)
  _check_temperature(temperature)
  if not 0 < target_acceptance < 1:
    raise EgmError(f'target_acceptance is {target_acceptance}: a mean '
                   'acceptance probability strictly between 0 and 1 (e.g. '
                   '0.57, optimal for MALA).')
  dtype = jnp.result_type(x0)
  schedules.as_schedule('step_size', step_size, 1, dtype, positive=True)

  def body(carry, key):
    state, log_h = carry
    h = jnp.exp(log_h)
    kernel = mala_kernel(energy_fn, h, jnp.sqrt(2 * temperature * h),
                         temperature)
    state, acceptance = kernel(state, key)
    log_h = log_h + rate * (jnp.mean(acceptance) - target_acceptance)
    return (state, log_h), log_h

  start = (init_state(energy_fn, lax.stop_gradient(x0)),
           jnp.log(jnp.asarray(step_size, dtype)))
  _, log_h = lax.scan(body, start, jax.random.split(key, n_steps))
  return lax.stop_gradient(jnp.exp(jnp.mean(log_h[n_steps // 2:])))
