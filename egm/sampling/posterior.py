"""The latent posterior of a generator and the one z-space Langevin sampler on it.

With x = g(z) + N(0, sigma^2 I) and a prior p(z) = exp(-prior_energy(z)) / Z
(default N(0, I), prior_energy = |z|^2 / 2), -log p(z | x) equals, up to a
constant,

  U(z) = |mask * (x - g(z))|^2 / (2 sigma^2) + prior_energy(z)   per example.

`posterior_langevin` runs `langevin` on U for the latents of a batch: every
method that infers latents by Langevin (abp, srinf's inference, coopnets,
and the clustered and deformable generators) calls it. Each chain's energy
computes example i from example i alone when g does (no batch statistics in
g: see the methods' docs), so the chains are independent across the batch.
`warm_start` reads the starting latents of a batch from a per-example table
(persistent chains) or draws them from the prior.
"""

import jax
import jax.numpy as jnp

from egm.errors import EgmError
from egm.sampling.core import sum_per_example
from egm.sampling.schedules import concrete_or_none
from egm.sampling.ula import langevin


def latent_posterior_energy(generate_fn, x, sigma, mask=None, prior_energy=None):
  """Energy of z (B, ...) -> (B,) given observations x (B, ...).

  sigma is the observation noise std (scalar, may be traced); mask, if
  given, broadcasts to x's shape and weights each pixel (0 = unobserved);
  prior_energy(z) -> (B,) is -log p(z) up to a constant (None: |z|^2 / 2, the
  standard normal; a learned prior, e.g. a latent EBM, otherwise).
  """
  host = concrete_or_none(sigma)
  if jnp.ndim(sigma) != 0 or (host is not None and host <= 0):
    raise EgmError(
        f'sigma must be one positive number (the observation noise standard '
        f'deviation), got {sigma!r}. Pass a scalar > 0, e.g. 0.3; a sigma '
        f'of 0 would make the posterior energy infinite.')
  if mask is not None:
    try:
      shape = jnp.broadcast_shapes(jnp.shape(mask), jnp.shape(x))
    except ValueError:
      shape = None
    if shape != jnp.shape(x):
      raise EgmError(
          f'mask of shape {jnp.shape(mask)} does not broadcast to the '
          f'observations x of shape {jnp.shape(x)}. Pass a mask with the '
          f'shape of x, or one with size-1 axes that broadcast to it (e.g. '
          f'(B, H, W, 1) for NHWC images), 1 where a pixel is observed.')

  def energy(z):
    generated = generate_fn(z)
    if jnp.shape(generated) != jnp.shape(x):
      raise EgmError(
          f'generate_fn returned shape {jnp.shape(generated)} for latents '
          f'of shape {jnp.shape(z)}, but the observations x have shape '
          f'{jnp.shape(x)}. The generator output must match x exactly: '
          f'check the batch size of z and the image shape of the generator.')
    residual = x - generated
    if mask is not None:
      residual = mask * residual
    prior = (0.5 * sum_per_example(jnp.square(z)) if prior_energy is None
             else prior_energy(z))
    return sum_per_example(jnp.square(residual)) / (2 * jnp.square(sigma)) + prior

  return energy


def delta_steps(delta, noise=True) -> dict:
  """`langevin`'s step_size and noise_scale for the update z <- z - delta^2/2 * dU/dz +
  delta * eps (the form of the ABP and CoopNets papers): {'step_size': delta^2 / 2,
  'noise_scale': delta, or 0 without `noise` (gradient descent on U)}."""
  return {'step_size': 0.5 * jnp.square(delta), 'noise_scale': delta if noise else 0.0}


def posterior_langevin(generate_fn, x, z0, key, *, sigma, n_steps, step_size,
                       noise_scale=None, mask=None, prior_energy=None,
                       preconditioner=None, stop_gradient=True, remat=False,
                       record_every=None):
  """Langevin on the latents of p(z | x) from z0 (B, *z_shape): (z, LangevinInfo).

  U is `latent_posterior_energy(generate_fn, x, sigma, mask, prior_energy)`;
  the update is z <- z - step_size * M dU/dz + noise_scale * sqrt(M) * eps
  with M the diagonal `preconditioner` (an array broadcasting to z0's event
  shape, e.g. one value per latent layer; None: 1). step_size and noise_scale
  are scalars or (n_steps,) schedules (arrays allowed: scheduled or learned);
  noise_scale None is sqrt(2 * step_size), the chain of p(z | x) itself.
  `stop_gradient` (default) cuts the chain from the autodiff graph; `remat`
  recomputes each step in the backward pass. Step t uses
  jax.random.split(key, n_steps)[t], as `langevin` does.
  """
  energy = latent_posterior_energy(generate_fn, x, sigma, mask, prior_energy)
  if preconditioner is None:
    return langevin(energy, z0, key, n_steps=n_steps, step_size=step_size,
                    noise_scale=noise_scale, stop_gradient=stop_gradient,
                    remat=remat, record_every=record_every)
  # Preconditioned Langevin in z is plain Langevin in w = z / sqrt(M), on U(sqrt(M) w).
  scale = jnp.sqrt(jnp.asarray(preconditioner, z0.dtype))
  w, info = langevin(lambda w: energy(w * scale), z0 / scale, key,
                     n_steps=n_steps, step_size=step_size, noise_scale=noise_scale,
                     stop_gradient=stop_gradient, remat=remat,
                     record_every=record_every)
  if info.trajectory is not None:
    info = info._replace(trajectory=info.trajectory * scale)
  return w * scale, info


def warm_start(key, shape, table=None, rows=None):
  """The starting latents (B, *z_shape) = `shape` of a batch: `table[rows]` (a
  per-example table of persistent latents (N, *z_shape) and the batch's rows
  (B,)), or without a table draws from N(0, I)."""
  if table is not None:
    return table[rows]
  return jax.random.normal(key, tuple(shape), jnp.float32)
