"""Maximum-likelihood EBM learned with short-run Langevin (Nijkamp et al. 2019).

Each update draws negative samples by K Langevin steps x ← x − s·∇E(x) + σ·ε
started from uniform noise (non-persistent short-run MCMC) or, with
`ebm.persistent`, from a replay buffer of earlier chains of which a fraction
`ebm.rejuvenation` restarts from noise; then it descends
mean E(x_data + data noise) − mean E(x_neg) (+ `ebm.energy_l2`·mean E²).
The chains are constants to the update (`stop_gradient`).
"""
import jax
import jax.numpy as jnp
import ml_collections

from egm.errors import EgmError
from egm.methods import base
from egm.methods.contract import Method, register
from egm.nets import make_networks
from egm.sampling import langevin, mala


def check_config(hp, batch_size: int) -> None:
  """Raises EgmError naming the `config.ebm` key that cannot work, and a value that can."""
  problems = []
  if int(hp.n_steps) != hp.n_steps or hp.n_steps < 1:
    problems.append(f'ebm.n_steps is {hp.n_steps}: the chains need K >= 1 steps (e.g. 100)')
  for key in ('step_size', 'noise_scale', 'mh_step_size', 'data_noise'):
    if hp[key] < 0:
      problems.append(f'ebm.{key} is {hp[key]}: it is a magnitude and must be >= 0')
  if hp.mh_step_size == 0:
    problems.append('ebm.mh_step_size is 0: the MH-adjusted chains need a positive step')
  if not hp.init_low < hp.init_high:
    problems.append(f'ebm.init_low {hp.init_low} must be below ebm.init_high {hp.init_high}')
  if hp.persistent and not 0 <= hp.rejuvenation <= 1:
    problems.append(f'ebm.rejuvenation is {hp.rejuvenation}: a fraction in [0, 1]')
  if hp.persistent and hp.buffer_size < batch_size:
    problems.append(f'ebm.buffer_size {hp.buffer_size} is smaller than the batch {batch_size}')
  if problems:
    raise EgmError('Bad ebm settings: ' + '; '.join(problems) +
                   '. Fix them with --config.ebm.<key>=<value>.')


@register('ebm')
class EBM(Method):
  """Energy network only; samples come from the Langevin sampler."""
  capabilities = frozenset({'energy', 'long_run'})

  @staticmethod
  def config_section():
    section = ml_collections.ConfigDict()
    section.n_steps = 100  # K short-run Langevin steps per update
    section.step_size = 1.0  # s in x <- x - s * dE/dx + noise_scale * eps
    section.noise_scale = 0.01
    section.mh_step_size = 1e-4  # step of the MH-adjusted (MALA) diagnostic chains
    section.init_low = -1.0  # chains start uniform in [init_low, init_high]
    section.init_high = 1.0
    section.data_noise = 0.03  # std of Gaussian noise added to data, [-1, 1] units
    section.persistent = False  # replay buffer of chains instead of fresh noise
    section.buffer_size = 10_000
    section.rejuvenation = 0.05  # fraction of buffer chains restarted from noise
    section.energy_l2 = 0.0  # weight of mean E^2
    return section

  @staticmethod
  def smoke(section):
    section.n_steps = min(section.n_steps, 5)
    section.buffer_size = min(section.buffer_size, 64)

  def setup(self):
    self.nets = make_networks(self.model_config, self.data.x_shape, 'energy')
    check_config(self.hp, self.data.global_batch)
    self.x_shape = self.data.x_shape
    self.opt = base.make_optimizers(self.optim_config, self.data.steps_per_epoch,
                                    ('energy',))['energy']
    self.clip = (-1.0, 1.0) if self.data.is_image else None

  def init(self, key, example_batch):
    k_net, k_buffer = jax.random.split(key)
    x = example_batch['x'][:2]
    state = {'energy': base.init_network(self.nets.energy, self.opt, k_net, x),
             'step': jnp.zeros((), jnp.int32)}
    if self.hp.persistent:
      state['buffer'] = self.noise(k_buffer, self.hp.buffer_size)
    return state

  def noise(self, key, n):
    """Uniform initial chains in [init_low, init_high]: (n, *x_shape)."""
    return jax.random.uniform(key, (n,) + self.x_shape, jnp.float32,
                              self.hp.init_low, self.hp.init_high)

  def energy(self, state, x):
    return base.apply_network(self.nets.energy, state['energy'], x)

  def run_chains(self, state, x0, key, n_steps=None, metropolis=False):
    """`n_steps` (default K) Langevin steps on the current energy, MH-adjusted if asked.

    Returns (x (B, ...), LangevinInfo). The MH-adjusted chain uses the
    standard parameterisation with noise sqrt(2·step_size).
    """
    energy_fn = lambda x: self.energy(state, x)
    n_steps = n_steps or self.hp.n_steps
    if metropolis:
      return mala(energy_fn, x0, key, n_steps=n_steps, step_size=self.hp.mh_step_size,
                  stop_gradient=True)
    return langevin(energy_fn, x0, key, n_steps=n_steps, step_size=self.hp.step_size,
                    noise_scale=self.hp.noise_scale, stop_gradient=True, clip=self.clip)

  def _initial_chains(self, state, key, n):
    """Noise, or buffer rows with a `rejuvenation` fraction replaced by noise; (x0, rows)."""
    k_noise, k_rows, k_fresh = jax.random.split(key, 3)
    fresh = self.noise(k_noise, n)
    if not self.hp.persistent:
      return fresh, None
    rows = jax.random.choice(k_rows, self.hp.buffer_size, (n,), replace=False)
    restart = jax.random.uniform(k_fresh, (n,)) < self.hp.rejuvenation
    restart = restart.reshape((n,) + (1,) * len(self.x_shape))
    return jnp.where(restart, fresh, state['buffer'][rows]), rows

  def update(self, state, batch, key):
    k_init, k_chain, k_data = jax.random.split(key, 3)
    x_data = batch['x']
    x_data = x_data + self.hp.data_noise * jax.random.normal(k_data, x_data.shape, x_data.dtype)
    x0, rows = self._initial_chains(state, k_init, x_data.shape[0])
    x_neg, info = self.run_chains(state, x0, k_chain)

    def loss(params):
      net = base.with_params(state['energy'], params)
      e = base.apply_network(self.nets.energy, net, jnp.concatenate([x_data, x_neg]))
      e_data, e_neg = jnp.split(e, 2)
      diff = jnp.mean(e_data) - jnp.mean(e_neg)
      return diff + self.hp.energy_l2 * jnp.mean(jnp.square(e)), (e_data, e_neg, diff)

    grads, (e_data, e_neg, diff) = jax.grad(loss, has_aux=True)(state['energy']['params'])
    new_state = dict(state, energy=base.apply_gradients(state['energy'], grads, self.opt),
                     step=state['step'] + 1)
    if rows is not None:
      new_state['buffer'] = state['buffer'].at[rows].set(x_neg)
    metrics = {
        'loss': diff,
        'energy_data': jnp.mean(e_data),
        'energy_sample': jnp.mean(e_neg),
        'energy_diff': diff,
        'chain_grad_norm_first': info.grad_norm[0],
        'chain_grad_norm_last': info.grad_norm[-1],
    }
    return new_state, metrics

  def sample(self, state, key, n):
    """Short-run samples: K steps from fresh noise (as the model is trained to produce)."""
    return self.long_run(state, key, n, self.hp.n_steps)[0]

  def long_run(self, state, key, n, n_steps, metropolis=False):
    """`n_steps` steps from fresh noise, for the long-run diagnostics; (x, LangevinInfo)."""
    k_init, k_chain = jax.random.split(key)
    return self.run_chains(state, self.noise(k_init, n), k_chain, n_steps, metropolis)
