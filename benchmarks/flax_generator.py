"""A user's plain flax.linen DCGAN generator (`nn.ConvTranspose`) in a posterior Langevin chain
over its latent (alternating back-propagation's inference step), with and without
`egm.cpu.fast_convolutions`, beside the same chain in PyTorch (`ConvTranspose2d`,
channels-last) when torch is installed.

`python -m benchmarks.flax_generator BATCH REPEATS` prints one JSON line. Each chain runs
K = `STEPS_PER_CALL` steps of z <- z - s dE/dz + sqrt(2 s) eps, E(z) = |x - G(z)|^2 / (2 sigma^2)
+ |z|^2 / 2, and the chains are timed in turn in one process (medians).
"""
import json
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import timing, torch_chain
from egm.cpu import fast_convolutions
from egm.sampling import langevin

STEPS_PER_CALL = 10
LATENT = 100
WIDTH = 256
STEP_SIZE = 0.002
SIGMA = 0.3


class FlaxGenerator(nn.Module):
  """z (B, LATENT) -> (B, 32, 32, 3): Dense to 4x4xWIDTH, three 4x4 stride-2 'SAME'
  transposed convolutions halving the channels (the last to 3), ReLU between, tanh out."""

  @nn.compact
  def __call__(self, z):
    h = nn.relu(nn.Dense(4 * 4 * WIDTH)(z)).reshape(z.shape[0], 4, 4, WIDTH)
    for features in (WIDTH // 2, WIDTH // 4):
      h = nn.relu(nn.ConvTranspose(features, (4, 4), (2, 2), padding='SAME')(h))
    return jnp.tanh(nn.ConvTranspose(3, (4, 4), (2, 2), padding='SAME')(h))


def _data(batch: int):
  rng = np.random.default_rng(0)
  z0 = rng.standard_normal((batch, LATENT)).astype(np.float32)
  x = rng.uniform(-1, 1, (batch, 32, 32, 3)).astype(np.float32)
  return z0, x


def compiled_chain(batch: int, wrap=lambda f: f):
  """(blocking call of the jitted K-step posterior chain, its compile seconds, its result)."""
  model = FlaxGenerator()
  z0, x = (jnp.asarray(a) for a in _data(batch))
  params = jax.eval_shape(model.init, jax.random.key(1), z0[:1])
  params = jax.tree.map(lambda s: 0.05 * jax.random.normal(jax.random.key(2), s.shape), params)

  def run(params, z0, key):
    energy = wrap(lambda z: (jnp.sum(jnp.square(x - model.apply(params, z)), (1, 2, 3))
                             / (2 * SIGMA ** 2) + 0.5 * jnp.sum(jnp.square(z), 1)))
    return langevin(energy, z0, key, n_steps=STEPS_PER_CALL, step_size=STEP_SIZE,
                    noise_scale=(2 * STEP_SIZE) ** 0.5)[0]

  return timing.compiled_call(run, params, z0, jax.random.key(0))


def torch_chain_call(batch: int):
  """The same chain in PyTorch: ConvTranspose2d(4, 2, 1) layers, channels-last, frozen
  parameters (only dE/dz is computed)."""
  import torch  # pylint: disable=import-outside-toplevel
  from torch import nn as tnn  # pylint: disable=import-outside-toplevel

  torch.manual_seed(0)
  dense = tnn.Linear(LATENT, 4 * 4 * WIDTH)
  convs = tnn.Sequential(tnn.ConvTranspose2d(WIDTH, WIDTH // 2, 4, 2, 1), tnn.ReLU(),
                         tnn.ConvTranspose2d(WIDTH // 2, WIDTH // 4, 4, 2, 1), tnn.ReLU(),
                         tnn.ConvTranspose2d(WIDTH // 4, 3, 4, 2, 1), tnn.Tanh())
  convs = convs.to(memory_format=torch.channels_last)
  for p in [*dense.parameters(), *convs.parameters()]:
    p.requires_grad_(False)
  z0, x = _data(batch)
  z0 = torch.from_numpy(z0)
  x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)

  def generate(z):
    h = torch.relu(dense(z)).reshape(-1, WIDTH, 4, 4).contiguous(memory_format=torch.channels_last)
    return convs(h)

  def run():
    z = z0
    for _ in range(STEPS_PER_CALL):
      z = z.detach().requires_grad_(True)
      energy = ((x - generate(z)) ** 2).sum() / (2 * SIGMA ** 2) + 0.5 * (z ** 2).sum()
      (grad,) = torch.autograd.grad(energy, z)
      z = z - STEP_SIZE * grad + (2 * STEP_SIZE) ** 0.5 * torch.randn_like(z)
    return z

  return run


def measure(batch: int, repeats: int) -> dict:
  """Median s/step of each chain, timed in turn, and the fast path's agreement."""
  chains = {'flax_plain': compiled_chain(batch),
            'flax_fast_path': compiled_chain(batch, fast_convolutions())}
  calls = {name: c[0] for name, c in chains.items()}
  if torch_chain.available():
    calls['torch_channels_last'] = torch_chain_call(batch)
    calls['torch_channels_last']()
  seconds = timing.interleaved(calls, repeats)
  plain_z, fast_z = chains['flax_plain'][2], chains['flax_fast_path'][2]
  result = {'batch': batch, 'repeats': repeats, 'steps_per_call': STEPS_PER_CALL,
            'fast_vs_plain_max_abs_difference': float(jnp.max(jnp.abs(fast_z - plain_z)))}
  for name, s in seconds.items():
    result[name] = {'s_per_step': s / STEPS_PER_CALL,
                    'speed_vs_flax_plain': seconds['flax_plain'] / s}
    if name in chains:
      result[name]['compile_s'] = chains[name][1]
  return result


def rows(batch: int, repeats: int) -> list:
  """The table of benchmarks/run.py's 'flax_generator' section: one row per chain."""
  r = measure(batch, repeats)
  names = [n for n in ('flax_plain', 'flax_fast_path', 'torch_channels_last') if n in r]
  table = [[name, f'{r[name]["s_per_step"]:.4f} s/step', f'{r[name]["speed_vs_flax_plain"]:.2f}',
            f'{r[name]["compile_s"]:.1f} s' if 'compile_s' in r[name] else ''] for name in names]
  return table + [[f'max abs(z_fast - z_plain) after {STEPS_PER_CALL} steps',
                   f'{r["fast_vs_plain_max_abs_difference"]:.2g}', '', '']]


if __name__ == '__main__':
  print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]))))
