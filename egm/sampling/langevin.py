"""Unadjusted Langevin dynamics as a pure (state, kernel) pair over lax.scan.

The update is x <- x - step_size * dE/dx + noise_scale * eps, eps ~ N(0, I),
with step and noise decoupled as in short-run EBM code (step_size=1,
noise_scale=0.01); standard Langevin with step delta is
step_size=delta**2/2, noise_scale=delta. Gradients flow through the chain to
x0, to parameters closed over by `energy_fn`, and to step_size/noise_scale.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from egm.errors import EgmError
from egm.sampling import schedules


class LangevinState(NamedTuple):
  """One step of a batch of chains."""
  position: jax.Array  # (B, ...) chain state.
  energy: jax.Array  # (B,) energy at `position`.
  grad: jax.Array  # (B, ...) dE/dposition.


class LangevinInfo(NamedTuple):
  """Per-step diagnostics of a chain, each (n_steps,)."""
  energy: jax.Array  # Mean energy over the batch after each step.
  grad_norm: jax.Array  # Batch mean of the per-example L2 norm of dE/dx.
  acceptance_rate: jax.Array  # Mean MH acceptance; ones when unadjusted.


def init_state(energy_fn, x):
  """Energy and gradient of `x` (B, ...) in one forward and backward pass."""
  if jnp.ndim(x) < 1 or not jnp.issubdtype(jnp.result_type(x), jnp.floating):
    raise EgmError(
        f'The chain state must be a floating-point array with a leading '
        f'batch axis, got shape {jnp.shape(x)} and dtype '
        f'{jnp.result_type(x)}. Pass x0 as a float array of shape (B, ...), '
        f'e.g. x0.astype(jnp.float32)[None] for a single example.')
  energy, vjp = jax.vjp(energy_fn, x)
  if jnp.shape(energy) != x.shape[:1]:
    raise EgmError(
        f'energy_fn returned an array of shape {jnp.shape(energy)} for a '
        f'batch of shape {x.shape}; energy_fn must return one scalar per '
        f'example, shape ({x.shape[0]},). Sum over the non-batch axes or '
        f'squeeze a trailing axis of size 1 inside energy_fn.')
  (grad,) = vjp(jnp.ones_like(energy))
  return LangevinState(x, energy, grad)


def langevin_kernel(energy_fn, step_size, noise_scale, clip=None):
  """One unadjusted step: kernel(state, key) -> state.

  step_size and noise_scale are scalars (this step's values); `clip=(lo,
  hi)` clamps the new position (e.g. images to [-1, 1]).
  """

  def kernel(state, key):
    x = state.position
    noise = jax.random.normal(key, x.shape, x.dtype)
    x = x - step_size * state.grad + noise_scale * noise
    if clip is not None:
      x = jnp.clip(x, *clip)
    return init_state(energy_fn, x)

  return kernel


def sum_per_example(x):
  """Sum over all but the batch axis: (B, ...) -> (B,)."""
  return jnp.sum(x, axis=tuple(range(1, x.ndim)))


def _l2_norm(x):
  """Per-example L2 norm of (B, ...) -> (B,), with a finite gradient at 0."""
  squared = sum_per_example(jnp.square(x))
  nonzero = squared > 0
  return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squared, 1)), 0)


def run_chain(energy_fn, step, x0, key, per_step, n_steps, *, stop_gradient,
              remat):
  """Scans step(state, key, *values) -> (state, acceptance (B,)) n_steps times.

  `per_step` is a tuple of (n_steps,) arrays; step t receives their t-th
  entries. Returns the final position (B, ...) and a LangevinInfo.
  """
  if stop_gradient:
    x0 = lax.stop_gradient(x0)

  def body(state, xs):
    step_key, values = xs
    state, acceptance = step(state, step_key, *values)
    info = LangevinInfo(
        energy=jnp.mean(state.energy),
        grad_norm=jnp.mean(_l2_norm(state.grad)),
        acceptance_rate=jnp.mean(acceptance))
    return state, info

  if remat:
    body = jax.checkpoint(body)
  keys = jax.random.split(key, n_steps)
  state, info = lax.scan(body, init_state(energy_fn, x0), (keys, per_step))
  result = (state.position, info)
  return lax.stop_gradient(result) if stop_gradient else result


def langevin(energy_fn, x0, key, *, n_steps, step_size, noise_scale,
             stop_gradient=False, remat=False, clip=None):
  """Runs n_steps of unadjusted Langevin from x0 (B, ...).

  energy_fn maps (B, ...) to (B,). step_size and noise_scale are floats,
  scalar arrays or (n_steps,) schedules. `remat` recomputes each step in the
  backward pass instead of storing its activations; `stop_gradient` cuts
  the chain out of the autodiff graph. Returns (position (B, ...), info).
  """
  n_steps = schedules.check_n_steps(n_steps)
  dtype = jnp.result_type(x0)
  step_size = schedules.as_schedule('step_size', step_size, n_steps, dtype)
  noise_scale = schedules.as_schedule('noise_scale', noise_scale, n_steps,
                                      dtype)

  def step(state, key, step_size, noise_scale):
    state = langevin_kernel(energy_fn, step_size, noise_scale, clip)(state, key)
    return state, jnp.ones_like(state.energy)

  return run_chain(energy_fn, step, x0, key, (step_size, noise_scale), n_steps,
                   stop_gradient=stop_gradient, remat=remat)


def langevin_trajectory(energy_fn, x0, key, *, n_steps, frames, step_size,
                        noise_scale, clip=None):
  """The chain of `langevin` at frames + 1 evenly spaced steps of n_steps.

  The same chain as `langevin` with the same key (its last frame is
  langevin's position), recorded at steps round(i * n_steps / frames), i = 0
  ... frames (step 0 is x0): returns (frames + 1, B, ...), no gradients.
  Every step is kept until the end: memory n_steps * B * prod(x.shape[1:]).
  """
  n_steps = schedules.check_n_steps(n_steps)
  if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
    raise EgmError(f'frames must be a positive Python int, got {frames!r}: '
                   'the number of chain states recorded after step 0.')
  dtype = jnp.result_type(x0)
  step_size = schedules.as_schedule('step_size', step_size, n_steps, dtype)
  noise_scale = schedules.as_schedule('noise_scale', noise_scale, n_steps,
                                      dtype)
  x0 = lax.stop_gradient(x0)

  def body(state, xs):
    key, step_size, noise_scale = xs
    state = langevin_kernel(energy_fn, step_size, noise_scale, clip)(state, key)
    return state, state.position

  keys = jax.random.split(key, n_steps)
  _, positions = lax.scan(body, init_state(energy_fn, x0),
                          (keys, step_size, noise_scale))
  steps = np.round(np.linspace(0, n_steps, frames + 1)).astype(int)
  chain = jnp.concatenate([x0[None], positions])
  return lax.stop_gradient(chain[steps])
