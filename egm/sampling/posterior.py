"""The posterior energy of a latent-variable generator, for z-space Langevin.

With x = g(z) + N(0, sigma^2 I) and z ~ N(0, I), -log p(z | x) equals, up to a
constant, |mask * (x - g(z))|^2 / (2 sigma^2) + |z|^2 / 2 per example.
"""

import jax.numpy as jnp

from egm.errors import EgmError
from egm.sampling.core import sum_per_example
from egm.sampling.schedules import concrete_or_none


def latent_posterior_energy(generate_fn, x, sigma, mask=None):
  """Energy of z (B, ...) -> (B,) given observations x (B, ...).

  sigma is the observation noise std (scalar, may be traced); mask, if
  given, broadcasts to x's shape and weights each pixel (0 = unobserved).
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
    return (sum_per_example(jnp.square(residual)) / (2 * jnp.square(sigma))
            + 0.5 * sum_per_example(jnp.square(z)))

  return energy
