"""Top-down generators with several layers of latent vectors (srinf, arXiv 1912.01909).

The latent is one flat vector z (B, sum(dims)) that the network splits into its layers
z_1 (top) ... z_L (bottom), each z_l ~ N(0, I) independently, so the posterior energy and
the Langevin samplers of egm.sampling work on it unchanged.

Images (`conv_hierarchical_generator`): one resolution level per latent layer, doubling
towards the image: layer l (0 = top) enters at side S / 2^(L-1-l), the bottom layer at
the image side S, so L layers need S divisible by 2^(L-1) (32 px takes up to 6 layers,
28 px up to 3, 8 px up to 4). z_1 is mapped by a dense layer to the top map; each lower
z_l by a dense layer to a 4-channel map of its level's side (the authors' projection),
a conv3x3 to the level's channels, added to the upsampled features. Each level ends in a
residual block (two conv3x3, GELU); the image comes out of a conv3x3 and tanh. No BatchNorm
(as the reference code). GELU in its tanh approximation: the step-size gradient through the
chain needs its higher derivatives, cheaper for tanh's GELU than for erf's
(docs/methods/srinf.md). Channels: `model.width` at the image side, doubling per level above it, at
most 4x (the reference keeps 64 at every level).

Points (`mlp_hierarchical_generator`): h = GELU(Dense(z_1)), then per lower layer
h = GELU(Dense(h) + Dense(z_l)), `model.mlp_depth` - L further hidden layers if any, and a
linear output (unbounded, as `mlp_generator`).

The layer dims come from `model.latent_dims` (a string '64,64,64,96,128' (top first;
'/' works as separator too) or a sequence of ints); a model section without that key
gives one layer of `model.z_dim`. The srinf method puts its `srinf.latent_dims` there.
"""
import re
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from egm.errors import EgmError
from egm.nets import layers
from egm.nets.conv import Conv
from egm.nets.registry import register_network

INJECT_CHANNELS = 4  # channels of the map a lower latent is projected to (reference: 4)
MAX_CHANNEL_FACTOR = 4  # channels at a level: width * min(2^(levels below), this)


def parse_latent_dims(value, key: str = 'model.latent_dims') -> tuple[int, ...]:
  """`value` ('64,64,96', '64/64/96' or a sequence of ints) as a tuple of dims >= 1, top first;
  raises EgmError naming `key` otherwise."""
  if isinstance(value, str):
    parts = [p for p in re.split(r'[,/\s]+', value.strip()) if p]
  elif isinstance(value, (list, tuple)):
    parts = list(value)
  else:
    parts = None
  dims = []
  for part in parts or ():
    try:
      number = float(part)
    except (TypeError, ValueError):
      dims = None
      break
    if number != int(number) or number < 1:
      dims = None
      break
    dims.append(int(number))
  if not dims:
    raise EgmError(
        f'{key} is {value!r}: it must list the latent dims of each layer, top first, as whole '
        f"numbers >= 1, e.g. '64,64,64,96,128' (in a config argument, where commas separate "
        f"items, write '64/64/64/96/128'). Fix --config.{key}.")
  return tuple(dims)


def max_layers(side: int) -> int:
  """The most latent layers an image of `side` pixels takes: side divisible by 2^(L-1)."""
  count = 1
  while side % (2 ** count) == 0:
    count += 1
  return count


def check_fits(dims: Sequence[int], x_shape, key: str = 'model.latent_dims') -> None:
  """Raises EgmError naming `key` when len(dims) layers do not fit images of `x_shape`."""
  if len(x_shape) != 3:
    return
  side, layers_ = x_shape[0], len(dims)
  if side % (2 ** (layers_ - 1)):
    most = max_layers(side)
    raise EgmError(
        f'{key} has {layers_} latent layers for {side}x{side} images: layer l (0 = top) enters '
        f'the top-down pathway at side {side}/2^({layers_ - 1}-l), so the side must be divisible '
        f'by 2^{layers_ - 1} = {2 ** (layers_ - 1)}. At most {most} layers fit {side} px: give '
        f'{key} at most {most} dims (e.g. --config.{key}='
        f"{','.join(str(d) for d in dims[-most:])}), or set --config.data.image_size to a "
        f'multiple of {2 ** (layers_ - 1)}.')


def latent_dims(model) -> tuple[int, ...]:
  """The layer dims of a model section: `model.latent_dims`, else one layer of `z_dim`."""
  value = model.get('latent_dims', None) if hasattr(model, 'get') else None
  if value is None or value == '':
    return (int(model.z_dim),)
  return parse_latent_dims(value)


def split_latent(z, dims: Sequence[int]):
  """(B, sum(dims)) -> [(B, d) per layer], top first."""
  if z.shape[-1] != sum(dims):
    raise EgmError(f'The hierarchical generator takes latents of {sum(dims)} dims '
                   f'(layers {tuple(dims)}), got shape {z.shape}.')
  bounds = [sum(dims[:i]) for i in range(1, len(dims))]
  return jnp.split(z, bounds, axis=-1)


def gelu(x):
  return nn.gelu(x, approximate=True)


class ResidualBlock(nn.Module):
  """x + GELU(conv3x3(GELU(conv3x3(x)))); channels kept."""

  @nn.compact
  def __call__(self, x):
    features = x.shape[-1]
    h = gelu(Conv(features, (3, 3), padding='SAME')(x))
    return x + gelu(Conv(features, (3, 3), padding='SAME')(h))


class ConvHierarchicalGenerator(nn.Module):
  """(B, sum(latent_dims)) -> (B, S, S, C) in [-1, 1]: one level per latent layer."""
  image_size: int
  channels: int
  width: int
  latent_dims: tuple[int, ...]

  def level_sides(self) -> list[int]:
    top = len(self.latent_dims) - 1
    return [self.image_size // 2 ** (top - l) for l in range(len(self.latent_dims))]

  def level_channels(self) -> list[int]:
    top = len(self.latent_dims) - 1
    return [self.width * min(2 ** (top - l), MAX_CHANNEL_FACTOR)
            for l in range(len(self.latent_dims))]

  @nn.compact
  def __call__(self, z, train: bool = True):
    del train
    check_fits(self.latent_dims, (self.image_size, self.image_size, self.channels))
    parts = split_latent(z, self.latent_dims)
    sides, chans, b = self.level_sides(), self.level_channels(), z.shape[0]
    h = nn.Dense(sides[0] * sides[0] * chans[0])(parts[0])
    h = ResidualBlock()(gelu(h.reshape(b, sides[0], sides[0], chans[0])))
    for z_l, side, ch in zip(parts[1:], sides[1:], chans[1:]):
      h = gelu(layers.Upsample2x(ch)(h))
      inject = nn.Dense(side * side * INJECT_CHANNELS)(z_l)
      inject = gelu(inject.reshape(b, side, side, INJECT_CHANNELS))
      h = ResidualBlock()(h + Conv(ch, (3, 3), padding='SAME')(inject))
    return jnp.tanh(Conv(self.channels, (3, 3), padding='SAME')(h))


class MLPHierarchicalGenerator(nn.Module):
  """(B, sum(latent_dims)) -> (B, out_dim): each lower layer's latent added to a hidden layer."""
  out_dim: int
  width: int
  depth: int
  latent_dims: tuple[int, ...]

  @nn.compact
  def __call__(self, z, train: bool = True):
    del train
    parts = split_latent(z, self.latent_dims)
    h = gelu(nn.Dense(self.width)(parts[0]))
    for z_l in parts[1:]:
      h = gelu(nn.Dense(self.width)(h) + nn.Dense(self.width, use_bias=False)(z_l))
    for _ in range(max(0, self.depth - len(self.latent_dims))):
      h = gelu(nn.Dense(self.width)(h))
    return nn.Dense(self.out_dim)(h)


def _flat_latent(model, x_shape):
  del x_shape
  return (sum(latent_dims(model)),)


@register_network('conv_hierarchical_generator', latent_shape=_flat_latent)
def conv_hierarchical_generator(model, x_shape):
  dims = latent_dims(model)
  check_fits(dims, x_shape)
  return ConvHierarchicalGenerator(x_shape[0], x_shape[2], model.width, dims)


@register_network('mlp_hierarchical_generator', latent_shape=_flat_latent)
def mlp_hierarchical_generator(model, x_shape):
  return MLPHierarchicalGenerator(x_shape[0], model.width, model.mlp_depth, latent_dims(model))
