"""Networks as flax.linen modules, chosen by the shape of the data."""
import dataclasses

import flax.linen as nn

from egm.errors import EgmError
from egm.nets.encoder import ConvEncoder, MLPEncoder
from egm.nets.energy import ConvEnergy, MLPEnergy
from egm.nets.generator import ConvGenerator, MLPGenerator


@dataclasses.dataclass(frozen=True)
class Networks:
  """The three networks of the family: E(x) -> (B,), G(z) -> x, I(x) -> (mu, logvar)."""
  energy: nn.Module
  generator: nn.Module
  encoder: nn.Module


def make_networks(model_config, x_shape) -> Networks:
  """Builds MLPs for points of shape (D,) and ConvNets for images of shape (S, S, C)."""
  width, z_dim = model_config.width, model_config.z_dim
  if len(x_shape) == 1:
    depth = model_config.mlp_depth
    return Networks(MLPEnergy(width, depth, model_config.energy_reference_std), MLPGenerator(x_shape[0], width, depth),
                    MLPEncoder(z_dim, width, depth))
  if len(x_shape) == 3 and x_shape[0] == x_shape[1] and x_shape[2] in (1, 3):
    return Networks(ConvEnergy(width, model_config.energy_reference_std), ConvGenerator(x_shape[0], x_shape[2], width),
                    ConvEncoder(z_dim, width))
  raise EgmError(
      f'No network family for data of shape {tuple(x_shape)}: egm builds MLPs for 2-D points '
      '(shape (D,)) and ConvNets for square images (S, S, 1 or 3). Set config.data.image_size '
      'and config.data.channels to get square images.')
