"""Per-step schedules for step sizes and noise scales: (n_steps,) arrays.

A sampler argument such as `step_size` is either one value for every step or
a schedule with one value per step; `as_schedule` turns both into an
(n_steps,) array that the chain scans over. Values may be traced, so a
schedule built from learned parameters passes gradients back to them.
"""

import jax
import jax.numpy as jnp
import numpy as np

from egm.errors import EgmError


def check_n_steps(n_steps):
  """Returns `n_steps` as a Python int; raises EgmError unless it is one > 0."""
  if (isinstance(n_steps, bool)
      or not isinstance(n_steps, (int, np.integer)) or n_steps <= 0):
    raise EgmError(
        f'n_steps must be a positive Python int, got {n_steps!r}. The number '
        'of steps fixes the length of the scan, so it must be known when the '
        'function is traced: pass it as a plain int (with jax.jit, bind it '
        'with functools.partial or mark it in static_argnames).')
  return int(n_steps)


def concrete_or_none(value):
  """`value` as a host numpy array, or None when it is traced."""
  if isinstance(value, jax.core.Tracer):
    return None
  # A deliberate trace-time read of a constant for validation, not a
  # hidden transfer in the sampling path.
  with jax.transfer_guard_device_to_host('allow'):
    return np.asarray(value)


def as_schedule(name, value, n_steps, dtype, positive_because=None):
  """`value` (scalar or (n_steps,)) broadcast to an (n_steps,) `dtype` array.

  Raises EgmError for a schedule whose length is not n_steps and for a
  concrete negative value, or a zero one when `positive_because` (the reason
  the values must be > 0, quoted in the error) is given.
  """
  shape = jnp.shape(value)
  if shape != () and shape != (n_steps,):
    what = (f'a schedule of length {shape[0]}' if len(shape) == 1
            else f'an array of shape {shape}')
    raise EgmError(
        f'{name} is {what}, but the chain runs n_steps={n_steps} steps. '
        f'Pass {name} as a scalar (the same value at every step) or as an '
        f'array of shape ({n_steps},) with one value per step, e.g. '
        f'egm.sampling.schedules.linear(start, end, {n_steps}).')
  host = concrete_or_none(value)
  positive = positive_because is not None
  if host is not None and (np.any(host <= 0) if positive
                           else np.any(host < 0)):
    bound, reason = ('positive', positive_because) if positive else (
        'non-negative', 'Step sizes and noise scales are magnitudes of the '
        'update: pass values >= 0 (a decaying schedule should end at 0 or '
        'above).')
    raise EgmError(f'{name} must be {bound} at every step, got minimum '
                   f'{float(host.min())}. {reason}')
  return jnp.broadcast_to(jnp.asarray(value, dtype), (n_steps,))


def constant(value, n_steps):
  """`value` at every step: (n_steps,) float32."""
  return jnp.full((check_n_steps(n_steps),), value, jnp.float32)


def linear(start, end, n_steps):
  """Linear interpolation from `start` (step 0) to `end` (last step)."""
  return jnp.linspace(start, end, check_n_steps(n_steps), dtype=jnp.float32)


def geometric(start, end, n_steps):
  """Geometric interpolation from `start` to `end`; both must be positive."""
  n_steps = check_n_steps(n_steps)
  for name, value in (('start', start), ('end', end)):
    host = concrete_or_none(value)
    if host is not None and np.any(host <= 0):
      raise EgmError(
          f'geometric schedule {name} must be positive, got {host!r}: a '
          'geometric schedule multiplies by a constant ratio each step, so '
          'it can neither reach nor cross zero. Use schedules.linear for a '
          'schedule that decays to 0, or end at a small positive value.')
  start = jnp.asarray(start, jnp.float32)
  end = jnp.asarray(end, jnp.float32)
  fraction = jnp.arange(n_steps, dtype=jnp.float32) / max(n_steps - 1, 1)
  return start * (end / start) ** fraction
