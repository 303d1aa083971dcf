"""Energy networks E(x) -> (B,) energies (low energy = high density)."""
import flax.linen as nn
import jax.numpy as jnp

from egm.nets import layers
from egm.nets.conv import Conv


def reference_energy(x, std: float):
  """−log N(x; 0, std²I) up to a constant, per example: (B, ...) -> (B,); 0 when std is 0.

  Added to a network's energy it makes exp(−E) normalisable and keeps mass off
  the regions no data or sample ever visits (the reference density of CoopNets).
  """
  if not std:
    return jnp.zeros(x.shape[0], x.dtype)
  return 0.5 * jnp.sum(jnp.square(x).reshape(x.shape[0], -1), axis=1) / std ** 2


class ConvEnergy(nn.Module):
  """ConvNet energy for NHWC images in [-1, 1]: (B,S,S,C) -> (B,).

  The trunk of `layers.ConvTrunk`, then a conv over the whole base x base map
  (VALID) to one channel: 5 convolutions for 32 px, LeakyReLU 0.2, no norm;
  plus `reference_energy(x, reference_std)`. With `spectral_norm` every convolution is
  spectrally normalised (its power iteration advances when `train`).

  `compute_dtype` 'bfloat16' runs the network's convolutions and activations in
  bfloat16 (parameters, the input x, the returned energy and hence Langevin chain
  states and their gradients stay float32).
  """
  width: int = 64
  reference_std: float = 0.0
  compute_dtype: str = 'float32'
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = layers.ConvTrunk(self.width, self.spectral_norm)(x.astype(self.compute_dtype), train)
    h = layers.normalized(Conv(1, h.shape[1:3], padding='VALID'), self.spectral_norm, train)(h)
    energy = jnp.reshape(h, (x.shape[0],)).astype(x.dtype)
    return energy + reference_energy(x, self.reference_std)


class MLPEnergy(nn.Module):
  """MLP energy for points: (B,D) -> (B,), plus `reference_energy(x, reference_std)`."""
  width: int = 128
  depth: int = 3
  reference_std: float = 0.0

  @nn.compact
  def __call__(self, x):
    return layers.MLP(self.width, self.depth, 1)(x)[:, 0] + reference_energy(x, self.reference_std)
