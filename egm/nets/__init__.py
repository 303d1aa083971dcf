"""Networks as flax.linen modules, chosen by the shape of the data."""
import dataclasses

import flax.linen as nn

from egm.errors import EgmError
from egm.nets.encoder import ConvEncoder, MLPEncoder
from egm.nets.energy import ConvEnergy, MLPEnergy
from egm.nets.generator import ConvGenerator, MLPGenerator
from egm.nets.texture import SCALE, TextureEnergy, TextureGenerator


@dataclasses.dataclass(frozen=True)
class Networks:
  """The networks of the family: E(x) -> (B,), G(z) -> x, I(x) -> (mu, logvar).

  `z_shape` is the per-example latent shape G takes for data of the given shape;
  `encoder` is None for families without one.
  """
  energy: nn.Module
  generator: nn.Module
  encoder: nn.Module | None
  z_shape: tuple[int, ...]


def texture_latent_shape(side: int, z_dim: int) -> tuple[int, int, int]:
  """Latent map shape of the texture generator for side x side images."""
  if side % SCALE:
    raise EgmError(
        f'Texture images of {side}x{side} pixels: the texture nets work on sides divisible by '
        f'{SCALE}. Set --config.data.image_size (or the synthesis size) to a multiple of {SCALE}.')
  return (side // SCALE, side // SCALE, z_dim)


def energy_dtype(model_config) -> str:
  """`model.energy_dtype`, checked: the compute dtype of the image ConvNet energy."""
  if model_config.energy_dtype not in ('float32', 'bfloat16'):
    raise EgmError(
        f'config.model.energy_dtype is {model_config.energy_dtype!r}; it must be float32 or '
        'bfloat16 (bfloat16 convolutions, float32 parameters and chain states).')
  return model_config.energy_dtype


def texture_energy_stages(model_config, side: int) -> int:
  """`model.texture_energy_stages`, checked against the training crop side."""
  stages = model_config.texture_energy_stages
  if int(stages) != stages or stages < 1 or side < 2 ** stages:
    raise EgmError(
        f'config.model.texture_energy_stages is {stages} for {side}x{side} crops: it must be a '
        f'whole number >= 1 with 2^stages <= the crop side (at most {max(side.bit_length() - 1, 1)}'
        ' here). Fix --config.model.texture_energy_stages or --config.data.image_size.')
  return int(stages)


def make_networks(model_config, x_shape) -> Networks:
  """MLPs for points (D,), ConvNets for square images (S, S, C), or the texture pair.

  `model_config.architecture` 'auto' picks by the data shape; 'texture' builds
  the fully convolutional `TextureEnergy` / `TextureGenerator` (no encoder).
  """
  width, z_dim = model_config.width, model_config.z_dim
  ref_std = model_config.energy_reference_std
  is_image = len(x_shape) == 3 and x_shape[0] == x_shape[1] and x_shape[2] in (1, 3)
  if model_config.architecture not in ('auto', 'texture'):
    raise EgmError(
        f'config.model.architecture is {model_config.architecture!r}; it must be auto '
        '(MLPs for points, ConvNets for images) or texture. Fix --config.model.architecture.')
  if model_config.architecture == 'texture' and is_image:
    energy = TextureEnergy(width, ref_std, texture_energy_stages(model_config, x_shape[0]))
    return Networks(energy, TextureGenerator(x_shape[2], width), None,
                    texture_latent_shape(x_shape[0], z_dim))
  if model_config.architecture == 'auto' and len(x_shape) == 1:
    depth = model_config.mlp_depth
    return Networks(MLPEnergy(width, depth, ref_std), MLPGenerator(x_shape[0], width, depth),
                    MLPEncoder(z_dim, width, depth), (z_dim,))
  if model_config.architecture == 'auto' and is_image:
    energy = ConvEnergy(width, ref_std, compute_dtype=energy_dtype(model_config))
    return Networks(energy, ConvGenerator(x_shape[0], x_shape[2], width),
                    ConvEncoder(z_dim, width), (z_dim,))
  raise EgmError(
      f'No network family for data of shape {tuple(x_shape)}: egm builds MLPs for 2-D points '
      '(shape (D,)) and ConvNets for square images (S, S, 1 or 3). Set config.data.image_size '
      'and config.data.channels to get square images.')
