"""Shared building blocks and the geometry of the image networks."""
import flax.linen as nn
import jax.numpy as jnp

from egm.nets.conv import Conv


def leaky_relu(x):
  """LeakyReLU with slope 0.2, the EBM / encoder activation of the references."""
  return nn.leaky_relu(x, negative_slope=0.2)


def image_stages(image_size: int) -> tuple[int, int]:
  """Number of 2x resolution stages and the base side length.

  The side is halved while it stays even and at least 4 after halving:
  64 -> (4 stages, 4), 32 -> (3, 4), 28 -> (2, 7), 16 -> (2, 4), 8 -> (1, 4).
  """
  base, stages = image_size, 0
  while base % 2 == 0 and base // 2 >= 4:
    base //= 2
    stages += 1
  return stages, base


class MLP(nn.Module):
  """Fully connected trunk: `depth` hidden layers of `width` units, then `out`."""
  width: int
  depth: int
  out: int
  activation: str = 'swish'

  @nn.compact
  def __call__(self, x):
    act = getattr(nn, self.activation)
    for _ in range(self.depth):
      x = act(nn.Dense(self.width)(x))
    return nn.Dense(self.out)(x)


class ConvTrunk(nn.Module):
  """Downsampling conv stack (no normalisation): (B,S,S,C) -> (B,base,base,width*2^stages).

  conv3x3(width) then one conv4x4 stride-2 per stage, doubling channels, LeakyReLU 0.2:
  for 32 px and width 64 this is the 64 -> 128 -> 256 -> 512 ConvNet of the short-run EBM.
  Every conv spectrally normalised with `spectral_norm` (`normalized`; `train` updates its
  power iteration).
  """
  width: int
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    stages, _ = image_stages(x.shape[1])
    conv = lambda *args, **kwargs: normalized(Conv(*args, **kwargs), self.spectral_norm, train)
    x = leaky_relu(conv(self.width, (3, 3), padding='SAME')(x))
    for i in range(stages):
      x = conv(self.width * 2 ** (i + 1), (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))(x)
      x = leaky_relu(x)
    return x


class Upsample2x(nn.Module):
  """Learned 2x upsampling: conv3x3 to 4·features channels, then depth-to-space (pixel shuffle).

  (B,H,W,C) -> (B,2H,2W,features). It spans the same maps as a 4x4 stride-2
  transposed convolution, and on XLA:CPU it runs several times faster: the
  transposed convolution's gradient falls off the fast convolution path.
  """
  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    h = Conv(4 * self.features, (3, 3), padding='SAME', use_bias=self.use_bias)(x)
    b, height, width, _ = h.shape
    h = h.reshape(b, height, width, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5)
    return h.reshape(b, 2 * height, 2 * width, self.features)


def normalized(layer: nn.Module, spectral_norm: bool, train: bool):
  """`layer` as a function of x, its kernel spectrally normalised when `spectral_norm`: flax's
  `nn.SpectralNorm`, one power iteration per call, its `u` vector (in 'batch_stats') updated
  only when `train`. Call it inside the `nn.compact` method that created `layer`."""
  if not spectral_norm:
    return layer
  return lambda x: nn.SpectralNorm(layer, n_steps=1)(x, update_stats=train)


def batch_norm(x, train: bool):
  """BatchNorm (momentum 0.9) of egm's conv nets: batch statistics in training, running ones
  in evaluation."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)


def flatten(x):
  """(B, ...) -> (B, prod(...))."""
  return jnp.reshape(x, (x.shape[0], -1))
