"""Generator networks g(z) -> x."""
import flax.linen as nn
import jax.numpy as jnp

from egm.nets import layers
from egm.nets.conv import Conv


class ConvGenerator(nn.Module):
  """DCGAN-style generator: (B,z) -> (B,S,S,C) in [-1, 1] (tanh).

  Dense to a base x base map of width*2^stages channels, then per stage a
  learned 2x upsampling (`layers.Upsample2x`, in place of ConvTranspose 4x4
  stride 2) halving the channels, each followed by BatchNorm (`batch_norm`) and
  ReLU, and a final conv3x3 to C channels. Without BatchNorm each output row is a
  function of its own latent alone (what a Langevin chain on z needs).
  """
  image_size: int
  channels: int
  width: int = 64
  batch_norm: bool = True

  @nn.compact
  def __call__(self, z, train: bool = True):
    stages, base = layers.image_stages(self.image_size)
    norm = lambda h: nn.relu(layers.batch_norm(h, train) if self.batch_norm else h)
    h = nn.Dense(base * base * self.width * 2 ** stages, use_bias=False)(z)
    h = norm(jnp.reshape(h, (z.shape[0], base, base, self.width * 2 ** stages)))
    for i in reversed(range(stages)):
      h = norm(layers.Upsample2x(self.width * 2 ** i, use_bias=False)(h))
    return jnp.tanh(Conv(self.channels, (3, 3), padding='SAME')(h))


class MLPGenerator(nn.Module):
  """MLP generator for points: (B,z) -> (B,D), unbounded output."""
  out_dim: int = 2
  width: int = 128
  depth: int = 3

  @nn.compact
  def __call__(self, z, train: bool = True):
    del train
    return layers.MLP(self.width, self.depth, self.out_dim)(z)
