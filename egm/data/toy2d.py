"""`toy2d:NAME` — the 2-D toy distributions of FFJORD (Grathwohl et al. 2019).

Each sampler follows lib/toy_data.py of the FFJORD code (same shapes,
scales and noise, so the points lie roughly in [-4, 4]^2), written against
a `np.random.Generator` so that samples are reproducible.
"""
from typing import Callable

import numpy as np

from egm.data.dataset import ArraySource, Dataset, LoadOptions
from egm.data.sources import check_fixed_splits, register
from egm.errors import EgmError

NUM_TRAIN = 100_000  # fixed samples drawn with seed 0
NUM_TEST = 10_000  # fixed samples drawn with seed 1
# The 8gaussians centres: radius 4 / 1.414, on the compass directions.
EIGHT_GAUSSIAN_CENTRES = (4 / 1.414) * np.array(
    [(np.cos(a), np.sin(a)) for a in np.arange(8) * np.pi / 4])

Sampler = Callable[[np.random.Generator, int], np.ndarray]
_SAMPLERS: dict[str, Sampler] = {}


def _sampler(name: str) -> Callable[[Sampler], Sampler]:
  def wrap(fn: Sampler) -> Sampler:
    _SAMPLERS[name] = fn
    return fn
  return wrap


@_sampler('8gaussians')
def _eight_gaussians(rng, n):
  centres = EIGHT_GAUSSIAN_CENTRES[rng.integers(0, 8, n)]
  return centres + rng.normal(size=(n, 2)) * (0.5 / 1.414)


@_sampler('rings')
def _rings(rng, n):
  radius = 3.0 * rng.choice([1.0, 0.75, 0.5, 0.25], n)
  angle = rng.uniform(0, 2 * np.pi, n)
  circle = np.stack([np.cos(angle), np.sin(angle)], 1) * radius[:, None]
  return circle + rng.normal(scale=0.08, size=(n, 2))


@_sampler('circles')
def _circles(rng, n):
  radius = 3.0 * rng.choice([1.0, 0.5], n)
  angle = rng.uniform(0, 2 * np.pi, n)
  circle = np.stack([np.cos(angle), np.sin(angle)], 1) * radius[:, None]
  return circle + rng.normal(scale=3 * 0.08, size=(n, 2))


@_sampler('swissroll')
def _swissroll(rng, n):
  t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
  roll = np.stack([t * np.cos(t), t * np.sin(t)], 1)
  return (roll + rng.normal(size=(n, 2))) / 5


@_sampler('moons')
def _moons(rng, n):
  angle = rng.uniform(0, np.pi, n)
  upper = rng.uniform(size=n) < 0.5
  x = np.where(upper, np.cos(angle), 1 - np.cos(angle))
  y = np.where(upper, np.sin(angle), 0.5 - np.sin(angle))
  moons = np.stack([x, y], 1) + rng.normal(scale=0.1, size=(n, 2))
  return moons * 2 + np.array([-1, -0.2])


@_sampler('pinwheel')
def _pinwheel(rng, n):
  arm = rng.integers(0, 5, n)
  features = rng.normal(size=(n, 2)) * np.array([0.3, 0.1])
  features[:, 0] += 1
  angle = arm * (2 * np.pi / 5) + 0.25 * np.exp(features[:, 0])
  cos, sin = np.cos(angle), np.sin(angle)
  return 2 * np.stack([features[:, 0] * cos + features[:, 1] * sin,
                       -features[:, 0] * sin + features[:, 1] * cos], 1)


@_sampler('2spirals')
def _two_spirals(rng, n):
  t = np.sqrt(rng.uniform(size=n)) * 3 * np.pi
  sign = np.where(rng.uniform(size=n) < 0.5, 1.0, -1.0)[:, None]
  spiral = np.stack([-np.cos(t) * t, np.sin(t) * t], 1)
  spiral = sign * (spiral + rng.uniform(size=(n, 2)) * 0.5) / 3
  return spiral + rng.normal(scale=0.1, size=(n, 2))


@_sampler('checkerboard')
def _checkerboard(rng, n):
  x1 = rng.uniform(-2, 2, n)
  x2 = rng.uniform(size=n) - 2 * rng.integers(0, 2, n) + np.floor(x1) % 2
  return np.stack([x1, x2], 1) * 2


TOY2D_NAMES = tuple(sorted(_SAMPLERS))


def sample_toy2d(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
  """Returns float32 (n, 2) samples of the toy distribution `name`."""
  if name not in _SAMPLERS:
    raise EgmError(
        f'Unknown 2-D toy distribution {name!r}. Choose one of '
        f'{", ".join(TOY2D_NAMES)}, e.g. '
        '--config.data.source=toy2d:8gaussians.')
  return _SAMPLERS[name](rng, n).astype(np.float32)


@register('toy2d')
def load_toy2d(argument: str, options: LoadOptions) -> Dataset:
  """Fixed train (seed 0) and test (seed 1) samples of a toy distribution."""
  check_fixed_splits(options, f'toy2d:{argument}')
  train = sample_toy2d(argument, np.random.default_rng(0), NUM_TRAIN)
  test = sample_toy2d(argument, np.random.default_rng(1), NUM_TEST)
  return Dataset(name=argument, kind='points', train=ArraySource(train),
                 test=ArraySource(test), num_classes=None, toy2d=argument)
