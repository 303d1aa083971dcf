"""Metropolis-adjusted Langevin (MALA): Langevin proposals with an MH test.

The proposal is x' = x - step_size * dE/dx + noise_scale * eps; each example
is accepted with probability min(1, exp(E(x) - E(x') + log q(x | x') -
log q(x' | x))) using the exact Gaussian proposal densities, so the chain
targets exp(-E) for any step size and noise scale (the default noise scale
sqrt(2 * step_size) is standard MALA).
"""

import jax
import jax.numpy as jnp

from egm.sampling import schedules
from egm.sampling.langevin import init_state
from egm.sampling.langevin import run_chain
from egm.sampling.langevin import sum_per_example


def mala_kernel(energy_fn, step_size, noise_scale):
  """One MH-adjusted step: kernel(state, key) -> (state, acceptance (B,)).

  acceptance is each example's acceptance probability min(1, ratio).
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
    log_ratio = (state.energy - proposal.energy + log_backward - log_forward)
    log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
    uniform = jax.random.uniform(accept_key, log_ratio.shape, log_ratio.dtype)
    accept = jnp.log(uniform) < log_ratio

    def select(new, old):
      return jnp.where(accept.reshape(accept.shape + (1,) * (new.ndim - 1)),
                       new, old)

    return (jax.tree.map(select, proposal, state),
            jnp.exp(jnp.minimum(log_ratio, 0)))

  return kernel


def mala(energy_fn, x0, key, *, n_steps, step_size, noise_scale=None,
         stop_gradient=False, remat=False):
  """Runs n_steps of MALA from x0 (B, ...); see `langevin` for the arguments.

  noise_scale defaults to sqrt(2 * step_size) at each step. Returns
  (position (B, ...), info) with info.acceptance_rate the mean acceptance
  probability per step.
  """
  n_steps = schedules.check_n_steps(n_steps)
  dtype = jnp.result_type(x0)
  step_size = schedules.as_schedule('step_size', step_size, n_steps, dtype,
                                    positive=noise_scale is None)
  if noise_scale is None:
    noise_scale = jnp.sqrt(2 * step_size)
  noise_scale = schedules.as_schedule('noise_scale', noise_scale, n_steps,
                                      dtype, positive=True)

  def step(state, key, step_size, noise_scale):
    return mala_kernel(energy_fn, step_size, noise_scale)(state, key)

  return run_chain(energy_fn, step, x0, key, (step_size, noise_scale), n_steps,
                   stop_gradient=stop_gradient, remat=remat)
