"""A two-phase test method whose energy network grows (registered on import): `growing_energy`
learns a small energy at 4x4 pixels, then grows new input layers for 8x8 and fades them in
(egm/methods/growth.py). Its capabilities (`energy`, `sample`) act at the phase's resolution."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from egm.methods import Method, Phase, base, contract, growth, optim, register
from egm.sampling import langevin

COARSE, FINE = 4, 8


def avg_pool2(x):
  """(B, 2S, 2S, C) -> (B, S, S, C) by 2x2 means."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean((2, 4))


class ProgressiveEnergy(nn.Module):
  """E(x) of stage 0 (4x4 inputs) or stage 1 (8x8): a per-pixel `from_rgb_<side>` layer, at
  stage 1 a fine `block_8` conv and 2x pooling faded in over the old path on the pooled
  image, then the shared `block_4` conv and `head`. At α = 0, stage 1 computes stage 0 on
  the 2x2-pooled image."""
  stage: int
  width: int = 8

  @nn.compact
  def __call__(self, x, alpha=1.0):
    from_rgb = lambda side: nn.Dense(self.width, name=f'from_rgb_{side}')
    if self.stage == 0:
      h = nn.swish(from_rgb(COARSE)(x))
    else:
      coarse = nn.swish(from_rgb(COARSE)(avg_pool2(x)))
      fine = nn.swish(nn.Conv(self.width, (3, 3), name=f'block_{FINE}')(
          nn.swish(from_rgb(FINE)(x))))
      h = growth.fade(alpha, coarse, avg_pool2(fine))
    h = nn.swish(nn.Conv(self.width, (3, 3), name=f'block_{COARSE}')(h))
    return nn.Dense(1, name='head')(h.reshape(x.shape[0], -1))[:, 0]


@register('growing_energy')
class GrowingEnergy(Method):
  """Energy regression: mean (E(x) − 1)² + mean (E(noise) + 1)², at 4x4 then at 8x8."""
  capabilities = frozenset({'energy'})
  traces: dict = {}  # (function name, phase) -> number of traces

  @staticmethod
  def config_section():
    section = ml_collections.ConfigDict()
    section.coarse_steps = 6  # updates at 4x4 before the network grows
    section.fade_in_steps = 4  # updates over which the 8x8 layers fade in
    section.optim = optim.network_settings(energy={'lr': 3e-3})
    return section

  def setup(self):
    self.opt = self.optimizer('energy')

  def phases(self, num_steps):
    del num_steps
    return (Phase('coarse', num_steps=self.hp.coarse_steps, image_size=COARSE),
            Phase('fine', fade_in_steps=self.hp.fade_in_steps))

  def side(self) -> int:
    return COARSE if self.phase == 0 else FINE

  def network(self, phase=None):
    return ProgressiveEnergy(stage=self.phase if phase is None else phase)

  def _count(self, name):
    key = (name, self.phase)
    GrowingEnergy.traces[key] = GrowingEnergy.traces.get(key, 0) + 1

  def init(self, key, example_batch):
    x = jnp.zeros((2, COARSE, COARSE, self.data.x_shape[-1]))
    return {'energy': base.init_network(self.network(0), self.opt, key, x),
            'step': jnp.zeros((), jnp.int32)}

  def enter_phase(self, state, phase_index, key):
    x = jnp.zeros((2, FINE, FINE, self.data.x_shape[-1]))
    grown = growth.grow(state['energy'], self.network(phase_index), self.opt, key, x)
    return dict(state, energy=grown)

  def alpha(self, step):
    return contract.fade_in(self.phases(None), self.phase, step)

  def energy(self, state, x):
    self._count('energy')
    return self.network().apply({'params': state['energy']['params']}, x,
                                self.alpha(state['step']))

  def update(self, state, batch, key):
    self._count('update')
    x = batch['x']
    noise = jax.random.uniform(key, x.shape, minval=-1.0, maxval=1.0)

    def loss(params):
      e = self.network().apply({'params': params}, jnp.concatenate([x, noise]),
                               self.alpha(state['step']))
      e_data, e_noise = jnp.split(e, 2)
      return jnp.mean(jnp.square(e_data - 1.0)) + jnp.mean(jnp.square(e_noise + 1.0))

    value, grads = jax.value_and_grad(loss)(state['energy']['params'])
    return ({'energy': base.apply_gradients(state['energy'], grads, self.opt),
             'step': state['step'] + 1},
            {'loss': value, 'fade_in': self.alpha(state['step'])})

  def sample(self, state, key, n):
    """Ten Langevin steps on E from uniform noise at the phase's resolution."""
    self._count('sample')
    k_start, k_chain = jax.random.split(key)
    x0 = jax.random.uniform(k_start, (n, self.side(), self.side(), self.data.x_shape[-1]),
                            minval=-1.0, maxval=1.0)
    return langevin(lambda x: self.energy(state, x), x0, k_chain, n_steps=10, step_size=0.01,
                    stop_gradient=True, clip=(-1.0, 1.0))[0]
