"""What `langevin` and `mala` share: the state, the info, and the scan.

A chain state is a LangevinState of B chains; a kernel maps (state, key) to
(state, StepInfo); `run_chain` scans a kernel over n_steps and returns the
final positions with a LangevinInfo.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from egm.errors import EgmError
from egm.sampling import schedules


class LangevinState(NamedTuple):
  """One step of a batch of B chains."""
  position: jax.Array  # (B, ...) chain state.
  energy: jax.Array  # (B,) energy at `position`.
  grad: jax.Array  # (B, ...) dE/dposition.


class StepInfo(NamedTuple):
  """What one kernel step reports for each chain: each (B,)."""
  acceptance_prob: jax.Array  # min(1, MH ratio); ones when unadjusted.
  accepted: jax.Array  # bool, the proposal was taken; True when unadjusted.
  decision_log_prob: jax.Array  # log P(this accept or reject); 0 unadjusted.


class LangevinInfo(NamedTuple):
  """Diagnostics of n_steps on B chains, per step and per chain."""
  energy: jax.Array  # (n_steps,) batch mean energy after each step.
  grad_norm: jax.Array  # (n_steps,) batch mean of the L2 norm of dE/dx.
  acceptance_rate: jax.Array  # (n_steps,) batch mean acceptance probability.
  final_state: LangevinState  # Each chain's last state; energy is (B,).
  chain_acceptance_rate: jax.Array  # (B,) mean acceptance prob over steps.
  decision_log_prob: jax.Array  # (B,) sum of StepInfo.decision_log_prob.
  trajectory: jax.Array | None  # (n_steps // k + 1, B, ...), record_every=k.


def check_position(x):
  """Raises EgmError unless x is a float (B, *event_shape), event ndim >= 1."""
  if jnp.ndim(x) < 2 or not jnp.issubdtype(jnp.result_type(x), jnp.floating):
    raise EgmError(
        f'The chain state must be a floating-point array of shape (B, '
        f'*event_shape), a batch axis of B chains then at least one axis per '
        f'chain; got shape {jnp.shape(x)} and dtype {jnp.result_type(x)}. '
        f'For one chain add the batch axis, x0[None] (one 2-D point of shape '
        f'(2,) becomes (1, 2)); for B chains of scalars add an event axis, '
        f'x0[:, None] ((B,) becomes (B, 1)); cast integers with '
        f'x0.astype(jnp.float32).')


def init_state(energy_fn, x):
  """Energy (B,) and gradient of x (B, ...) in one forward and backward pass."""
  check_position(x)
  energy, vjp = jax.vjp(energy_fn, x)
  if jnp.shape(energy) != x.shape[:1]:
    fix = ('It returned one number for the whole batch: sum over the '
           'non-batch axes only (e.g. jnp.sum(..., axis=-1) for points of '
           'shape (B, D), or egm.sampling.sum_per_example), so that each '
           'chain moves on its own energy.' if jnp.ndim(energy) == 0 else
           'Sum over the non-batch axes or squeeze a trailing axis of size 1 '
           'inside energy_fn (a Flax module returning (B, 1): '
           'model.apply(params, x)[:, 0]).')
    raise EgmError(
        f'energy_fn returned an array of shape {jnp.shape(energy)} for a '
        f'batch of shape {x.shape}; energy_fn must return one scalar per '
        f'example, shape ({x.shape[0]},). {fix}')
  (grad,) = vjp(jnp.ones_like(energy))
  return LangevinState(x, energy, grad)


def sum_per_example(x):
  """Sum over all but the batch axis: (B, ...) -> (B,)."""
  return jnp.sum(x, axis=tuple(range(1, x.ndim)))


def _l2_norm(x):
  """Per-example L2 norm of (B, ...) -> (B,), with a finite gradient at 0."""
  squared = sum_per_example(jnp.square(x))
  nonzero = squared > 0
  return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squared, 1)), 0)


def default_noise(step_size, temperature):
  """sqrt(2 * temperature * step_size): Langevin on exp(-E / temperature)."""
  return jnp.sqrt(2 * (1.0 if temperature is None else temperature) * step_size)


def check_clip(clip):
  """`clip` as a (lo, hi) pair or None; raises EgmError unless lo < hi."""
  if clip is None:
    return None
  bounds = (tuple(schedules.concrete_or_none(v) for v in clip)
            if isinstance(clip, (tuple, list)) else ())
  known = all(b is not None for b in bounds)
  if (len(bounds) != 2 or any(b is not None and b.ndim for b in bounds)
      or (known and not bounds[0] < bounds[1])):
    raise EgmError(f'clip must be a pair of numbers (lo, hi) with lo < hi, '
                   f'got {clip!r}: the box every coordinate of the chain stays '
                   f'in (e.g. (-1.0, 1.0) for images).')
  return tuple(clip)


TEMPERATURE_REASON = ('The chain targets exp(-E / temperature): pass values > '
                      '0 (1, the default, samples exp(-E) itself).')


def chain_schedules(x0, n_steps, step_size, noise_scale, temperature, *,
                    positive_noise):
  """(step_size, noise_scale, temperature), each (n_steps,) in x0's dtype.

  temperature None is 1; noise_scale None is default_noise at each step.
  """
  check_position(x0)
  dtype = jnp.result_type(x0)
  temperature = schedules.as_schedule(
      'temperature', 1.0 if temperature is None else temperature, n_steps,
      dtype, positive_because=TEMPERATURE_REASON)
  step_size = schedules.as_schedule(
      'step_size', step_size, n_steps, dtype,
      positive_because=None if noise_scale is not None else (
          'noise_scale defaults to sqrt(2 * temperature * step_size), which '
          'a zero step makes 0 (with an infinite derivative): pass steps > 0 '
          'or pass noise_scale.'))
  if noise_scale is None:
    noise_scale = default_noise(step_size, temperature)
  noise_scale = schedules.as_schedule(
      'noise_scale', noise_scale, n_steps, dtype,
      positive_because=positive_noise)
  return step_size, noise_scale, temperature


def _check_record_every(record_every, n_steps):
  if record_every is not None and (
      isinstance(record_every, bool) or not isinstance(record_every, int)
      or not 1 <= record_every <= n_steps):
    raise EgmError(
        f'record_every must be None or a Python int in [1, n_steps={n_steps}]'
        f', got {record_every!r}: the trajectory keeps the state every '
        f'record_every steps (its length fixes the output shape).')


def run_chain(energy_fn, make_kernel, x0, key, per_step, n_steps, *,
              stop_gradient, remat, record_every):
  """Scans make_kernel(*values)(state, key) over n_steps from x0 (B, ...).

  `per_step` is a tuple of (n_steps,) arrays whose t-th entries are step t's
  values; step t uses jax.random.split(key, n_steps)[t]. Returns (position
  (B, ...), LangevinInfo).
  """
  _check_record_every(record_every, n_steps)
  if stop_gradient:
    x0 = lax.stop_gradient(x0)

  def step(carry, xs):
    state, (acceptance, log_prob) = carry
    step_key, values = xs
    state, info = make_kernel(*values)(state, step_key)
    means = (jnp.mean(state.energy), jnp.mean(_l2_norm(state.grad)),
             jnp.mean(info.acceptance_prob))
    totals = (acceptance + info.acceptance_prob,
              log_prob + info.decision_log_prob)
    return (state, totals), means

  if remat:
    step = jax.checkpoint(step)
  state = init_state(energy_fn, x0)
  carry = (state, (jnp.zeros_like(state.energy),) * 2)
  xs = (jax.random.split(key, n_steps), per_step)
  trajectory = None
  if record_every is None:
    carry, means = lax.scan(step, carry, xs)
  else:
    carry, means, frames = _scan_recording(step, carry, xs, n_steps,
                                           record_every)
    trajectory = jnp.concatenate([state.position[None], frames])
  state, (acceptance, log_prob) = carry
  info = LangevinInfo(*means, state, acceptance / n_steps, log_prob,
                      trajectory)
  result = (state.position, info)
  return lax.stop_gradient(result) if stop_gradient else result


def _scan_recording(step, carry, xs, n_steps, every):
  """lax.scan(step, carry, xs) that also returns the position every `every`
  steps: (carry, per-step outputs, frames (n_steps // every, B, ...))."""
  n_frames = n_steps // every
  head = n_frames * every
  blocks = jax.tree.map(
      lambda a: a[:head].reshape((n_frames, every) + a.shape[1:]), xs)

  def block(carry, xs):
    carry, means = lax.scan(step, carry, xs)
    return carry, (carry[0].position, means)

  carry, (frames, means) = lax.scan(block, carry, blocks)
  means = jax.tree.map(lambda a: a.reshape(-1), means)
  if n_steps % every:
    carry, rest_means = lax.scan(step, carry,
                                 jax.tree.map(lambda a: a[head:], xs))
    means = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), means,
                         rest_means)
  return carry, means, frames
