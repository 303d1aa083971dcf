"""A user's plain flax.linen ConvNet energy in egm's Langevin chain, with and without
`egm.cpu.fast_convolutions`, beside the same network built from egm's modules.

`python -m benchmarks.flax_fast_path BATCH REPEATS` prints one JSON line. The three chains
(K = `STEPS_PER_CALL` steps, step 1, noise 0.01, as `benchmarks.chain`) are timed in turn
in one process (medians); speeds are relative to egm's own `ConvEnergy`.
"""
import json
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks import chain, timing
from egm.cpu import fast_convolutions
from egm.sampling import langevin

STEPS_PER_CALL = 10


class FlaxConvEnergy(nn.Module):
  """`ConvEnergy(width)` written with plain `nn.Conv`: (B,32,32,C) -> (B,).

  conv3x3 width, then conv4x4 stride-2 pad-1 doubling channels down to 4x4, LeakyReLU 0.2,
  then a 4x4 VALID conv to one channel.
  """
  width: int = 64

  @nn.compact
  def __call__(self, x):
    h, features = nn.leaky_relu(nn.Conv(self.width, (3, 3))(x), 0.2), self.width
    while h.shape[1] > 4:
      features *= 2
      h = nn.leaky_relu(nn.Conv(features, (4, 4), strides=2, padding=1)(h), 0.2)
    return nn.Conv(1, h.shape[1:3], padding='VALID')(h).reshape(x.shape[0])


def compiled_chain(model, x0, wrap=lambda f: f):
  """(blocking call of the jitted K-step chain, its compile seconds, its result)."""
  params = jax.eval_shape(model.init, jax.random.key(1), x0[:1])
  params = jax.tree.map(lambda s: 0.02 * jax.random.normal(jax.random.key(2), s.shape), params)

  def run(params, x0, key):
    energy = wrap(lambda x: model.apply(params, x))
    return langevin(energy, x0, key, n_steps=STEPS_PER_CALL, step_size=1.0, noise_scale=0.01)[0]

  return timing.compiled_call(run, params, x0, jax.random.key(0))


def measure(batch: int, repeats: int) -> dict:
  """Median s/step and speed relative to egm's ConvEnergy of each chain, timed in turn."""
  x0 = jax.random.uniform(jax.random.key(0), (batch, *chain.IMAGE_SHAPE), jnp.float32, -1, 1)
  flax_model = FlaxConvEnergy()
  chains = {'egm_modules': compiled_chain(chain.ConvEnergy(), x0),
            'flax_plain': compiled_chain(flax_model, x0),
            'flax_fast_path': compiled_chain(flax_model, x0, fast_convolutions())}
  seconds = timing.interleaved({name: c[0] for name, c in chains.items()}, repeats)
  egm_s = seconds['egm_modules']
  plain_x, fast_x = chains['flax_plain'][2], chains['flax_fast_path'][2]
  result = {'batch': batch, 'repeats': repeats, 'steps_per_call': STEPS_PER_CALL,
            'fast_vs_plain_max_abs_difference': float(jnp.max(jnp.abs(fast_x - plain_x))),
            'plain_max_abs_move': float(jnp.max(jnp.abs(plain_x - x0)))}
  for name, s in seconds.items():
    result[name] = {'s_per_step': s / STEPS_PER_CALL, 'speed_vs_egm_modules': egm_s / s,
                    'compile_s': chains[name][1]}
  return result


def rows(batch: int, repeats: int) -> list:
  """The table of benchmarks/run.py's 'flax' section: one row per chain."""
  r = measure(batch, repeats)
  table = [[name, f'{r[name]["s_per_step"]:.3f} s/step', f'{r[name]["speed_vs_egm_modules"]:.2f}',
            f'{r[name]["compile_s"]:.1f} s'] for name in ('egm_modules', 'flax_plain',
                                                          'flax_fast_path')]
  difference, move = r['fast_vs_plain_max_abs_difference'], r['plain_max_abs_move']
  return table + [[f'max abs(x_fast - x_plain) after {STEPS_PER_CALL} steps',
                   f'{difference:.2g} (chain moved up to {move:.2g})', '', '']]


if __name__ == '__main__':
  print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]))))
