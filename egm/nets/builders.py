"""The built-in networks, registered by `<family>_<role>` name (see registry.py)."""
from egm.errors import EgmError
from egm.nets.dcgan import DCGANEncoder, DCGANEnergy, DCGANGenerator
from egm.nets import residual
from egm.nets.encoder import ConvEncoder, MLPEncoder
from egm.nets.energy import ConvEnergy, MLPEnergy
from egm.nets.generator import ConvGenerator, MLPGenerator
from egm.nets.registry import register_network
from egm.nets.residual import ResNetEncoder, ResNetEnergy, ResNetGenerator
from egm.nets.texture import SCALE, TextureEnergy, TextureGenerator


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


def _vector_latent(model, x_shape):
  del x_shape
  return (model.z_dim,)


@register_network('mlp_energy')
def mlp_energy(model, x_shape):
  del x_shape
  return MLPEnergy(model.width, model.mlp_depth, model.energy_reference_std)


@register_network('mlp_generator', latent_shape=_vector_latent)
def mlp_generator(model, x_shape, batch_norm=False):
  """`batch_norm` must stay False: the MLP generator has no normalisation."""
  if batch_norm:
    raise EgmError('The MLP generator has no BatchNorm (batch_norm=True was asked for).')
  return MLPGenerator(x_shape[0], model.width, model.mlp_depth)


@register_network('mlp_encoder')
def mlp_encoder(model, x_shape):
  del x_shape
  return MLPEncoder(model.z_dim, model.width, model.mlp_depth)


@register_network('conv_energy')
def conv_energy(model, x_shape, spectral_norm=False):
  """`spectral_norm=True`: every convolution spectrally normalised."""
  del x_shape
  return ConvEnergy(model.width, model.energy_reference_std,
                    compute_dtype=energy_dtype(model), spectral_norm=spectral_norm)


@register_network('conv_generator', latent_shape=_vector_latent)
def conv_generator(model, x_shape, batch_norm=True):
  """`batch_norm=False`: no BatchNorm (for a generator a Langevin chain differentiates)."""
  return ConvGenerator(x_shape[0], x_shape[2], model.width, batch_norm)


@register_network('conv_encoder')
def conv_encoder(model, x_shape):
  del x_shape
  return ConvEncoder(model.z_dim, model.width)


@register_network('texture_energy')
def texture_energy(model, x_shape):
  return TextureEnergy(model.width, model.energy_reference_std,
                       texture_energy_stages(model, x_shape[0]))


@register_network('texture_generator',
                  latent_shape=lambda model, x_shape: texture_latent_shape(x_shape[0], model.z_dim))
def texture_generator(model, x_shape, batch_norm=True):
  """`batch_norm=False`: no BatchNorm (for a generator a Langevin chain differentiates)."""
  return TextureGenerator(x_shape[2], model.width, batch_norm)


@register_network('resnet_energy')
def resnet_energy(model, x_shape, spectral_norm=False, activation='leaky_relu'):
  """`spectral_norm=True`: every layer spectrally normalised; `activation` by name."""
  return ResNetEnergy(residual.channel_plan(model, x_shape[0]), spectral_norm, activation,
                      model.energy_reference_std)


@register_network('resnet_generator', latent_shape=_vector_latent)
def resnet_generator(model, x_shape, batch_norm=True, activation='relu'):
  """`batch_norm=False`: no BatchNorm (for a generator a Langevin chain differentiates)."""
  return ResNetGenerator(x_shape[0], x_shape[2], residual.channel_plan(model, x_shape[0]),
                         batch_norm, activation)


@register_network('resnet_encoder')
def resnet_encoder(model, x_shape, batch_norm=True, activation='leaky_relu'):
  return ResNetEncoder(model.z_dim, residual.channel_plan(model, x_shape[0]), batch_norm,
                       activation)


@register_network('dcgan_energy')
def dcgan_energy(model, x_shape):
  del x_shape
  return DCGANEnergy(model.width)


@register_network('dcgan_generator', latent_shape=_vector_latent)
def dcgan_generator(model, x_shape, batch_norm=True):
  """`batch_norm=False`: no BatchNorm (for a generator a Langevin chain differentiates)."""
  return DCGANGenerator(x_shape[0], x_shape[2], model.width, batch_norm)


@register_network('dcgan_encoder')
def dcgan_encoder(model, x_shape):
  del x_shape
  return DCGANEncoder(model.z_dim, model.width)
