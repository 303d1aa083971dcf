"""The divergence triangle's reference networks (enijkamp/triangle, train_cifar10.py) as the
`dcgan` family (`model.architecture=dcgan`), beside egm's own conv family.

- generator: a transposed conv from z (1x1) to the base map (width·8 channels at 32 px),
  then per 2x stage a 4x4 stride-2 transposed conv, each with BatchNorm and ReLU, and a 3x3
  transposed conv to C channels, tanh. Channels per stage width·2^(stages−i) capped at 8·width
  (at 32 px: 512, 512, 256, 128).
- energy: conv3x3 width, per stage conv4x4 stride 2 with width·min(2^(i+1), 4) channels (the
  reference keeps 256 at its last stage where egm's conv energy doubles to 512), LeakyReLU
  0.2, and a conv over the whole base map to one number; no normalisation.
- encoder: conv3x3 width, per stage conv4x4 stride 2 with width·min(2^(i+1), 8) channels,
  LeakyReLU 0.2, no BatchNorm (as the reference), and a conv over the base map to (mu,
  logvar).
Convolution kernels start from N(0, 0.02²), as in the reference. The generator's transposed
convolutions run on egm's fast convolutions on a CPU (`egm.cpu.fast_convolutions`).
"""
import flax.linen as nn
import jax.numpy as jnp

from egm.cpu import fast_convolutions
from egm.nets import layers
from egm.nets.conv import Conv

INIT = nn.initializers.normal(0.02)


class DCGANGenerator(nn.Module):
  """(B, z) -> (B, S, S, C) in [-1, 1]."""
  image_size: int
  channels: int
  width: int = 64
  batch_norm: bool = True

  @nn.compact
  def __call__(self, z, train: bool = True):
    stages, base = layers.image_stages(self.image_size)
    norm = lambda h: nn.relu(layers.batch_norm(h, train) if self.batch_norm else h)
    up = lambda features, kernel, strides, padding: nn.ConvTranspose(
        features, kernel, strides, padding, use_bias=False, kernel_init=INIT)
    with fast_convolutions():
      h = norm(up(self.width * 8, (base, base), (1, 1), 'VALID')(z[:, None, None, :]))
      for i in range(stages):
        h = norm(up(self.width * min(2 ** (stages - i), 8), (4, 4), (2, 2), 'SAME')(h))
      out = nn.ConvTranspose(self.channels, (3, 3), padding='SAME', kernel_init=INIT)(h)
    return jnp.tanh(out)


class DCGANEnergy(nn.Module):
  """(B, S, S, C) -> (B,) energies."""
  width: int = 64

  @nn.compact
  def __call__(self, x):
    stages, base = layers.image_stages(x.shape[1])
    conv = lambda f, k, s=(1, 1), p='SAME', bias=False: Conv(f, k, s, p, bias, INIT)
    h = layers.leaky_relu(conv(self.width, (3, 3))(x))
    for i in range(stages):
      h = layers.leaky_relu(conv(self.width * min(2 ** (i + 1), 4), (4, 4), (2, 2),
                                 ((1, 1), (1, 1)))(h))
    return conv(1, (base, base), p='VALID', bias=True)(h).reshape(x.shape[0])


class DCGANEncoder(nn.Module):
  """(B, S, S, C') -> (mu, logvar), each (B, z_dim)."""
  z_dim: int
  width: int = 64

  @nn.compact
  def __call__(self, x, train: bool = True):
    del train
    stages, base = layers.image_stages(x.shape[1])
    h = layers.leaky_relu(Conv(self.width, (3, 3), use_bias=False, kernel_init=INIT)(x))
    for i in range(stages):
      h = layers.leaky_relu(Conv(self.width * min(2 ** (i + 1), 8), (4, 4), (2, 2),
                                 ((1, 1), (1, 1)), use_bias=False, kernel_init=INIT)(h))
    out = Conv(2 * self.z_dim, (base, base), padding='VALID', kernel_init=INIT)(h)
    out = out.reshape(x.shape[0], -1)
    mu, logvar = jnp.split(out, 2, axis=-1)
    return mu, jnp.clip(logvar, -12.0, 6.0)
