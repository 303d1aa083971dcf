"""Unadjusted Langevin: `langevin`, its kernel and `langevin_trajectory`.

The update is x <- x - step_size * dE/dx + noise_scale * eps, eps ~ N(0, I),
with step and noise decoupled as in short-run EBM code (step_size=1,
noise_scale=0.01); by default noise_scale = sqrt(2 * temperature *
step_size), Langevin on exp(-E / temperature) with temperature 1. Gradients
flow through the chain to x0, to parameters closed over by `energy_fn`, and to
step_size/noise_scale.
"""

import jax
import jax.numpy as jnp
import numpy as np

from egm.errors import EgmError
from egm.sampling import core
from egm.sampling import schedules


def _check_noise_or_temperature(noise_scale, temperature):
  if noise_scale is not None and temperature is not None:
    raise EgmError(
        'langevin takes noise_scale or temperature, not both: unadjusted '
        'Langevin targets roughly exp(-E / T) with T = noise_scale**2 / (2 * '
        'step_size), so temperature only sets the default noise_scale = '
        'sqrt(2 * temperature * step_size). Pass one of them (mala takes '
        'both: there temperature sets the target and noise_scale the '
        'proposal).')


def langevin_kernel(energy_fn, *, step_size, noise_scale=None,
                    temperature=None, clip=None):
  """One unadjusted step: kernel(state, key) -> (state, StepInfo).

  step_size, noise_scale and temperature are this step's scalars (see
  `langevin`); `clip=(lo, hi)` clamps the new position (e.g. images to [-1,
  1]). StepInfo is all-accepted: acceptance_prob ones, decision_log_prob 0.
  """
  _check_noise_or_temperature(noise_scale, temperature)
  if noise_scale is None:
    noise_scale = core.default_noise(step_size, temperature)
  clip = core.check_clip(clip)

  def kernel(state, key):
    x = state.position
    noise = jax.random.normal(key, x.shape, x.dtype)
    x = x - step_size * state.grad + noise_scale * noise
    if clip is not None:
      x = jnp.clip(x, *clip)
    state = core.init_state(energy_fn, x)
    ones = jnp.ones_like(state.energy)
    return state, core.StepInfo(ones, ones > 0, jnp.zeros_like(state.energy))

  return kernel


def langevin(energy_fn, x0, key, *, n_steps, step_size, noise_scale=None,
             temperature=None, clip=None, stop_gradient=False, remat=False,
             record_every=None):
  """Runs n_steps of unadjusted Langevin from x0 (B, ...).

  energy_fn maps (B, ...) to (B,). step_size and noise_scale are floats,
  scalar arrays or (n_steps,) schedules; noise_scale defaults to sqrt(2 *
  temperature * step_size) with temperature 1 (give temperature or
  noise_scale, not both). `clip=(lo, hi)` clamps each step's position.
  `remat` recomputes each step in the backward pass instead of storing its
  activations; `stop_gradient` cuts the chain out of the autodiff graph;
  `record_every=k` also returns info.trajectory, the positions at steps 0, k,
  2k, ... Step t is langevin_kernel(...)(state, jax.random.split(key,
  n_steps)[t]). Returns (position (B, ...), LangevinInfo).
  """
  n_steps = schedules.check_n_steps(n_steps)
  _check_noise_or_temperature(noise_scale, temperature)
  step_size, noise_scale, _ = core.chain_schedules(
      x0, n_steps, step_size, noise_scale, temperature, positive_noise=None)
  make_kernel = lambda h, s: langevin_kernel(energy_fn, step_size=h,
                                             noise_scale=s, clip=clip)
  return core.run_chain(energy_fn, make_kernel, x0, key,
                        (step_size, noise_scale), n_steps,
                        stop_gradient=stop_gradient, remat=remat,
                        record_every=record_every)


def langevin_trajectory(energy_fn, x0, key, *, n_steps, frames, step_size,
                        noise_scale=None, temperature=None, clip=None):
  """The chain of `langevin` at frames + 1 evenly spaced steps of n_steps.

  The same chain as `langevin` with the same key (its last frame is
  langevin's position), recorded at steps round(i * n_steps / frames), i = 0
  ... frames (step 0 is x0): returns (frames + 1, B, ...), no gradients.
  It is `langevin` with record_every the gcd of those steps (n_steps /
  frames when frames divides n_steps, else possibly 1: every step kept).
  """
  n_steps = schedules.check_n_steps(n_steps)
  if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
    raise EgmError(f'frames must be a positive Python int, got {frames!r}: '
                   'the number of chain states recorded after step 0.')
  steps = np.round(np.linspace(0, n_steps, frames + 1)).astype(int)
  every = int(np.gcd.reduce(steps))
  _, info = langevin(energy_fn, x0, key, n_steps=n_steps, step_size=step_size,
                     noise_scale=noise_scale, temperature=temperature,
                     clip=clip, stop_gradient=True, record_every=every)
  return info.trajectory[steps // every]
