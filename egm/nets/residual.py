"""Residual networks (energy, encoder, generator) for images from 8 px up to 1024 px, with
optional spectral normalisation, built from one pre-activation residual block.

The channel plan is `model.channel_plan` (comma-separated, one entry per 2x resolution stage
from the input down to the 4x4 (or 7x7) base, `layers.image_stages`; '' gives width·2^i
capped at 8·width), so a 1024-px network is a config value, e.g.
'16,32,64,128,256,512,512,512'.
Spectral normalisation (`spectral_norm`) wraps every convolution and dense layer in flax's
`nn.SpectralNorm` (one power iteration per call; its `u` vectors live in 'batch_stats' and
are updated only in training, `train=True`), so the normalised network is a function of
its parameters alone, example by example, at test time and inside Langevin chains.
"""
import flax.linen as nn
import jax.numpy as jnp

from egm.errors import EgmError
from egm.nets import layers
from egm.nets.conv import Conv

ACTIVATIONS = {'leaky_relu': layers.leaky_relu, 'swish': nn.swish, 'relu': nn.relu,
               'gelu': nn.gelu}
RESAMPLES = ('none', 'down', 'up')


def channel_plan(model_config, image_size: int) -> tuple[int, ...]:
  """`model.channel_plan` as one channel count per stage of an `image_size` network (first stage
  at full resolution); '' for width·2^i capped at 8·width."""
  stages, _ = layers.image_stages(image_size)
  text = str(model_config.get('channel_plan', '')).strip()
  if not text:
    return tuple(model_config.width * min(2 ** i, 8) for i in range(stages))
  try:
    plan = tuple(int(c) for c in text.split(','))
  except ValueError:
    plan = ()
  if len(plan) != stages or min(plan, default=0) < 1:
    raise EgmError(f'config.model.channel_plan is {text!r}: give {stages} positive channel '
                   f'counts, comma-separated, one per 2x stage of a {image_size}-px network (or '
                   "leave it '' for width·2^i).")
  return plan


def activation(name: str):
  if name not in ACTIVATIONS:
    raise EgmError(f'Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.')
  return ACTIVATIONS[name]


def _resample(x, how: str):
  if how == 'down':
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean((2, 4))
  if how == 'up':
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  return x


class ResidualBlock(nn.Module):
  """x + F(x), F = conv3x3(act(norm(conv3x3(act(norm(x)))))) (pre-activation), resampled by
  `resample` ('down': 2x average pooling after F and on the shortcut; 'up': 2x nearest
  upsampling before them); a 1x1 conv on the shortcut when the channels change.
  (B,H,W,C) -> (B,H',W',features). `norm` 'batch' or 'none'."""
  features: int
  resample: str = 'none'
  norm: str = 'none'
  spectral_norm: bool = False
  activation: str = 'leaky_relu'

  @nn.compact
  def __call__(self, x, train: bool = False):
    act = activation(self.activation)
    norm = (lambda h: layers.batch_norm(h, train)) if self.norm == 'batch' else (lambda h: h)
    conv = lambda features, size: layers.normalized(
        Conv(features, (size, size), padding='SAME'), self.spectral_norm, train)
    h = act(norm(x))
    if self.resample == 'up':
      h, x = _resample(h, 'up'), _resample(x, 'up')
    h = conv(self.features, 3)(h)
    h = conv(self.features, 3)(act(norm(h)))
    if x.shape[-1] != self.features:
      x = conv(self.features, 1)(x)
    if self.resample == 'down':
      h, x = _resample(h, 'down'), _resample(x, 'down')
    return x + h


class ResNetEnergy(nn.Module):
  """(B,S,S,C) -> (B,) energies: conv3x3, a 'down' block per stage (`channels`), the
  activation, a sum over positions and a dense layer to one number (all spectrally normalised
  with `spectral_norm`), plus the Gaussian reference energy of `reference_std`."""
  channels: tuple[int, ...]
  spectral_norm: bool = False
  activation: str = 'leaky_relu'
  reference_std: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    from egm.nets.energy import reference_energy
    h = layers.normalized(Conv(self.channels[0], (3, 3)), self.spectral_norm, train)(x)
    for features in self.channels:
      h = ResidualBlock(features, 'down', 'none', self.spectral_norm, self.activation)(h, train)
    h = jnp.sum(activation(self.activation)(h), axis=(1, 2))
    energy = layers.normalized(nn.Dense(1), self.spectral_norm, train)(h)[:, 0]
    return energy + reference_energy(x, self.reference_std)


class ResNetEncoder(nn.Module):
  """(B,S,S,C') -> (mu, logvar), each (B, z_dim): conv3x3, a 'down' block per stage with
  BatchNorm (`batch_norm`), the activation, then a dense layer."""
  z_dim: int
  channels: tuple[int, ...]
  batch_norm: bool = True
  activation: str = 'leaky_relu'

  @nn.compact
  def __call__(self, x, train: bool = True):
    norm = 'batch' if self.batch_norm else 'none'
    h = Conv(self.channels[0], (3, 3))(x)
    for features in self.channels:
      h = ResidualBlock(features, 'down', norm, activation=self.activation)(h, train)
    out = nn.Dense(2 * self.z_dim)(layers.flatten(activation(self.activation)(h)))
    mu, logvar = jnp.split(out, 2, axis=-1)
    return mu, jnp.clip(logvar, -12.0, 6.0)


class ResNetGenerator(nn.Module):
  """(B, z) -> (B,S,S,C) in [-1, 1]: a dense layer to the base map, an 'up' block per stage
  (`channels` read from the coarsest stage up), BatchNorm (`batch_norm`), the activation, a
  conv3x3 to C channels and tanh."""
  image_size: int
  out_channels: int
  channels: tuple[int, ...]
  batch_norm: bool = True
  activation: str = 'relu'

  @nn.compact
  def __call__(self, z, train: bool = True):
    _, base = layers.image_stages(self.image_size)
    norm = 'batch' if self.batch_norm else 'none'
    plan = tuple(reversed(self.channels))
    h = nn.Dense(base * base * plan[0])(z).reshape(z.shape[0], base, base, plan[0])
    for features in plan:
      h = ResidualBlock(features, 'up', norm, activation=self.activation)(h, train)
    h = layers.batch_norm(h, train) if self.batch_norm else h
    return jnp.tanh(Conv(self.out_channels, (3, 3))(activation(self.activation)(h)))

