"""Fully convolutional descriptor and generator for textures: any output size.

Both nets downsample / upsample by a fixed factor `SCALE` = 4, independent of the
input size, so a pair trained on S x S crops synthesises L x L textures for any
L divisible by 4 (the latent is a (L/4, L/4, z_dim) map of N(0, 1) variables).
"""
import flax.linen as nn
import jax.numpy as jnp

from egm.nets import layers
from egm.nets.conv import Conv
from egm.nets.energy import reference_energy

SCALE = 4  # spatial factor between the latent map and the image
_STAGES = 2  # log2(SCALE)


class TextureEnergy(nn.Module):
  """Stationary energy (B,H,W,C) -> (B,): a sum over positions of a local ConvNet score.

  conv3x3(width), then `stages` conv4x4 stride-2 stages doubling the channels,
  LeakyReLU 0.2, a 1x1 conv to one channel summed over the (H/2^stages, W/2^stages)
  map; plus `reference_energy(x, reference_std)`. Each score sees a patch of
  3·2^stages pixels (12 px for 2 stages, 24 for 3, 48 for 4).
  """
  width: int = 64
  reference_std: float = 0.0
  stages: int = _STAGES

  @nn.compact
  def __call__(self, x):
    h = layers.leaky_relu(Conv(self.width, (3, 3), padding='SAME')(x))
    for i in range(self.stages):
      h = Conv(self.width * 2 ** (i + 1), (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))(h)
      h = layers.leaky_relu(h)
    h = Conv(1, (1, 1))(h)
    return jnp.sum(h, axis=(1, 2, 3)) + reference_energy(x, self.reference_std)


class TextureGenerator(nn.Module):
  """(B,h,w,z_dim) latent map -> (B,4h,4w,C) in [-1, 1] (tanh).

  conv3x3 to width·4 channels, then two `layers.Upsample2x` stages halving the
  channels, each with BatchNorm (`batch_norm`) and ReLU, and a final conv3x3 to C channels.
  """
  channels: int
  width: int = 64
  batch_norm: bool = True

  @nn.compact
  def __call__(self, z, train: bool = True):
    norm = lambda h: nn.relu(layers.batch_norm(h, train) if self.batch_norm else h)
    h = norm(Conv(self.width * 2 ** _STAGES, (3, 3), padding='SAME', use_bias=False)(z))
    for i in reversed(range(_STAGES)):
      h = norm(layers.Upsample2x(self.width * 2 ** i, use_bias=False)(h))
    return jnp.tanh(Conv(self.channels, (3, 3), padding='SAME')(h))
