"""PyTorch copies of egm's image networks (egm/nets), same layer shapes, for speed ratios.

Images are NCHW tensors (optionally in channels-last memory format) in [-1, 1]. Layer
shapes, BatchNorm placement (momentum 0.9 in flax = 0.1 here, eps 1e-5) and activations
follow `ConvEnergy`, `ConvGenerator`, `ConvEncoder` and `ConvHierarchicalGenerator`;
initialisers and the pixel-shuffle channel order differ (same cost, different numbers).
"""
import torch
from torch import nn

from egm.nets.hierarchical import INJECT_CHANNELS, MAX_CHANNEL_FACTOR
from egm.nets.layers import image_stages


def memory_format(channels_last: bool):
  """torch.channels_last or torch.contiguous_format."""
  return torch.channels_last if channels_last else torch.contiguous_format


def _leaky():
  return nn.LeakyReLU(0.2)


def _gelu(x):
  return nn.functional.gelu(x, approximate='tanh')


def _map(h, channels: int, side: int, channels_last: bool):
  """(B, channels·side²) -> (B, channels, side, side) in the chosen memory format."""
  return h.view(h.shape[0], channels, side, side).contiguous(
      memory_format=memory_format(channels_last))


class Energy(nn.Module):
  """ConvEnergy: conv3x3 w, per stage conv4x4/2 doubling, LeakyReLU 0.2, conv base x base
  VALID to 1; (B,C,S,S) -> (B,), plus ‖x‖²/(2 std²) when `reference_std`."""

  def __init__(self, channels: int, image_size: int, width: int, reference_std: float = 0.0):
    super().__init__()
    stages, base = image_stages(image_size)
    layers, c = [nn.Conv2d(channels, width, 3, 1, 1), _leaky()], width
    for _ in range(stages):
      layers += [nn.Conv2d(c, 2 * c, 4, 2, 1), _leaky()]
      c *= 2
    self.net = nn.Sequential(*layers, nn.Conv2d(c, 1, base))
    self.reference_std = reference_std

  def forward(self, x):
    e = self.net(x).reshape(x.shape[0])
    if self.reference_std:
      e = e + 0.5 * x.square().flatten(1).sum(1) / self.reference_std ** 2
    return e


class Generator(nn.Module):
  """ConvGenerator: Dense (no bias) to base² x w·2^stages, BN, ReLU; per stage conv3x3 to 4F
  (no bias) + pixel shuffle + BN + ReLU; conv3x3 to C, tanh. (B,z) -> (B,C,S,S). Without
  `batch_norm`, no BN (egm's `batch_norm=False`)."""

  def __init__(self, z_dim: int, channels: int, image_size: int, width: int,
               channels_last: bool = False, batch_norm: bool = True):
    super().__init__()
    stages, self.base = image_stages(image_size)
    self.top, self.channels_last = width * 2 ** stages, channels_last
    self.dense = nn.Linear(z_dim, self.base ** 2 * self.top, bias=False)
    norm = (lambda f: nn.BatchNorm2d(f, momentum=0.1)) if batch_norm else (lambda f: nn.Identity())
    self.norm = norm(self.top)
    layers, c = [], self.top
    for i in reversed(range(stages)):
      f = width * 2 ** i
      layers += [nn.Conv2d(c, 4 * f, 3, 1, 1, bias=False), nn.PixelShuffle(2), norm(f),
                 nn.ReLU()]
      c = f
    self.up = nn.Sequential(*layers, nn.Conv2d(c, channels, 3, 1, 1), nn.Tanh())

  def forward(self, z):
    h = _map(self.dense(z), self.top, self.base, self.channels_last)
    return self.up(torch.relu(self.norm(h)))


class Encoder(nn.Module):
  """ConvEncoder: conv3x3 w + LeakyReLU, per stage conv4x4/2 (no bias) + BN + LeakyReLU,
  Dense to 2z; (B,C',S,S) -> (mu, logvar clipped to [-12, 6]), each (B,z)."""

  def __init__(self, in_channels: int, image_size: int, width: int, z_dim: int):
    super().__init__()
    stages, base = image_stages(image_size)
    layers, c = [nn.Conv2d(in_channels, width, 3, 1, 1), _leaky()], width
    for _ in range(stages):
      layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c, momentum=0.1),
                 _leaky()]
      c *= 2
    self.trunk = nn.Sequential(*layers)
    self.dense = nn.Linear(base * base * c, 2 * z_dim)

  def forward(self, x):
    mu, logvar = self.dense(self.trunk(x).flatten(1)).chunk(2, dim=-1)
    return mu, logvar.clamp(-12.0, 6.0)


class ResidualBlock(nn.Module):
  """x + GELU(conv3x3(GELU(conv3x3(x)))), channels kept (GELU: tanh approximation)."""

  def __init__(self, channels: int):
    super().__init__()
    self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
    self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)

  def forward(self, x):
    return x + _gelu(self.conv2(_gelu(self.conv1(x))))


class HierarchicalGenerator(nn.Module):
  """ConvHierarchicalGenerator: one level per latent layer (top first), no BatchNorm;
  (B, sum(dims)) -> (B,C,S,S)."""

  def __init__(self, dims, channels: int, image_size: int, width: int,
               channels_last: bool = False):
    super().__init__()
    top = len(dims) - 1
    self.dims, self.channels_last = list(dims), channels_last
    self.sides = [image_size // 2 ** (top - l) for l in range(len(dims))]
    self.chans = [width * min(2 ** (top - l), MAX_CHANNEL_FACTOR) for l in range(len(dims))]
    self.dense = nn.Linear(dims[0], self.sides[0] ** 2 * self.chans[0])
    self.res = nn.ModuleList([ResidualBlock(c) for c in self.chans])
    self.up = nn.ModuleList([nn.Conv2d(a, 4 * b, 3, 1, 1)
                             for a, b in zip(self.chans, self.chans[1:])])
    self.inject = nn.ModuleList([nn.Linear(d, s * s * INJECT_CHANNELS)
                                 for d, s in zip(dims[1:], self.sides[1:])])
    self.inject_conv = nn.ModuleList([nn.Conv2d(INJECT_CHANNELS, c, 3, 1, 1)
                                      for c in self.chans[1:]])
    self.out = nn.Conv2d(self.chans[-1], channels, 3, 1, 1)
    self.shuffle = nn.PixelShuffle(2)

  def forward(self, z):
    parts = torch.split(z, self.dims, dim=-1)
    h = _gelu(_map(self.dense(parts[0]), self.chans[0], self.sides[0], self.channels_last))
    h = self.res[0](h)
    for i, z_l in enumerate(parts[1:]):
      h = _gelu(self.shuffle(self.up[i](h)))
      inject = _gelu(_map(self.inject[i](z_l), INJECT_CHANNELS, self.sides[i + 1],
                          self.channels_last))
      h = self.res[i + 1](h + self.inject_conv[i](inject))
    return torch.tanh(self.out(h))
