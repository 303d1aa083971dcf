"""Energy networks E(x) -> (B,) energies (low energy = high density)."""
import flax.linen as nn
import jax.numpy as jnp

from egm.nets import layers


class ConvEnergy(nn.Module):
  """ConvNet energy for NHWC images in [-1, 1]: (B,S,S,C) -> (B,).

  The trunk of `layers.ConvTrunk`, then a conv over the whole base x base map
  (VALID) to one channel: 5 convolutions for 32 px, LeakyReLU 0.2, no norm.
  """
  width: int = 64

  @nn.compact
  def __call__(self, x):
    h = layers.ConvTrunk(self.width)(x)
    h = nn.Conv(1, h.shape[1:3], padding='VALID')(h)
    return jnp.reshape(h, (x.shape[0],))


class MLPEnergy(nn.Module):
  """MLP energy for points: (B,D) -> (B,)."""
  width: int = 128
  depth: int = 3

  @nn.compact
  def __call__(self, x):
    return layers.MLP(self.width, self.depth, 1)(x)[:, 0]
