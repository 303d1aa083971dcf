"""Encoder networks q(z|x) = N(mu, exp(logvar))."""
import flax.linen as nn
import jax.numpy as jnp

from egm.nets import layers
from egm.nets.conv import Conv


class ConvEncoder(nn.Module):
  """(B,S,S,C') -> (mu, logvar), each (B,z_dim): the energy trunk with BatchNorm, then Dense.

  The latent methods give C' = C + 1 channels: the zero-filled image and its observation
  mask (`egm.methods.base.observed_input`). Convolutions are `conv.Conv`,
  with `nn.Conv`'s parameters.
  """
  z_dim: int
  width: int = 64

  @nn.compact
  def __call__(self, x, train: bool = True):
    stages, _ = layers.image_stages(x.shape[1])
    h = layers.leaky_relu(Conv(self.width, (3, 3), padding='SAME')(x))
    for i in range(stages):
      h = Conv(self.width * 2 ** (i + 1), (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
               use_bias=False)(h)
      h = layers.leaky_relu(layers.batch_norm(h, train))
    out = nn.Dense(2 * self.z_dim)(layers.flatten(h))
    mu, logvar = jnp.split(out, 2, axis=-1)
    return mu, jnp.clip(logvar, -12.0, 6.0)


class MLPEncoder(nn.Module):
  """(B,D) -> (mu, logvar), each (B,z_dim)."""
  z_dim: int
  width: int = 128
  depth: int = 3

  @nn.compact
  def __call__(self, x, train: bool = True):
    del train
    out = layers.MLP(self.width, self.depth, 2 * self.z_dim)(x)
    mu, logvar = jnp.split(out, 2, axis=-1)
    return mu, jnp.clip(logvar, -12.0, 6.0)
