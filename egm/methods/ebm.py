"""Maximum-likelihood EBM learned with short-run Langevin (Nijkamp et al. 2019).

Each update draws negative samples by K Langevin steps x ← x − s·∇E(x) + σ·ε
started from uniform noise (non-persistent short-run MCMC) or, with
`ebm.persistent`, from a replay buffer of earlier chains (`state['per_example']
['buffer']`, one row per chain, sharded on the mesh's `data` axis) of which a
fraction `ebm.rejuvenation` restarts from noise; then it descends (`loss`)
mean E(x_data + data noise) − mean E(x_neg) (+ `ebm.energy_l2`·mean E²).
The chains are constants to the update (`stop_gradient`). With `ebm.clamp`, image
chains are clamped to [-1, 1] after every step (the reference does not clamp).

The chains have temperature T = σ²/(2s): for small s their stationary law is
∝ exp(−E/T). The MH-adjusted long-run diagnostic (`long_run(..., metropolis=True)`)
targets exp(−E/T) exactly at this training temperature, so it differs from the
unadjusted long run by the MH correction only. Its proposal is the training step
itself (`ebm.mh_step_size` = 0; noise sqrt(2·T·s) = σ) or a step h = `ebm.mh_step_size`
with noise sqrt(2·T·h); with `ebm.mh_target_acceptance` > 0 that step is first
adapted on a K-step pilot run from the same start towards that mean acceptance
(a fixed step is rarely accepted in high dimension). MH chains are never clamped
(that would break detailed balance).

`sample` and `trajectory` follow the chains the model is trained with: K steps from
noise or, for a persistent model, K more steps from randomly chosen buffer chains.
"""
import jax
import jax.numpy as jnp
import ml_collections

from egm.errors import EgmError
from egm.methods import base, optim
from egm.methods.contract import PER_EXAMPLE, Method, register
from egm.methods.watch import Watch, clamp_fraction, gradient_norms, spread_ratio
from egm.nets import make_networks
from egm.sampling import adapt_step_size, langevin, langevin_trajectory, mala


def check_config(hp, batch_size: int) -> None:
  """Raises EgmError naming the `config.ebm` key that cannot work, and a value that can."""
  problems = []
  if int(hp.n_steps) != hp.n_steps or hp.n_steps < 1:
    problems.append(f'ebm.n_steps is {hp.n_steps}: the chains need K >= 1 steps (e.g. 100)')
  for key in ('step_size', 'noise_scale', 'mh_step_size', 'data_noise'):
    if hp[key] < 0:
      problems.append(f'ebm.{key} is {hp[key]}: it is a magnitude and must be >= 0')
  if not 0 <= hp.mh_target_acceptance < 1:
    problems.append(f'ebm.mh_target_acceptance is {hp.mh_target_acceptance}: 0 (keep the MH '
                    'step) or a mean acceptance in (0, 1) (e.g. 0.57)')
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
  capabilities = frozenset({'energy', 'long_run', 'trajectory'})
  watch = Watch(
      energies=('energy_data', 'energy_sample'),
      grad_norms=('grad_norm_energy', 'chain_grad_norm_last'),
      energy_gap=('energy_data', 'energy_sample'), clamp_fraction='clamp_fraction',
      data_clamp_fraction='data_clamp_fraction',
      spread='sample_spread',
      knobs={'non_finite': ('ebm.optim.energy.lr', 'ebm.step_size', 'optim.grad_clip'),
             'energy': ('ebm.optim.energy.lr', 'ebm.energy_l2'),
             'grad_norm': ('ebm.optim.energy.lr', 'ebm.step_size'),
             'energy_gap': ('ebm.optim.energy.lr', 'ebm.step_size', 'ebm.n_steps'),
             'flat_energy': ('ebm.optim.energy.lr',),
             'clamp': ('ebm.step_size', 'ebm.clamp'),
             'collapse': ('ebm.noise_scale', 'ebm.n_steps', 'ebm.init_low', 'ebm.init_high')})

  @staticmethod
  def config_section():
    section = ml_collections.ConfigDict()
    section.n_steps = 100  # K short-run Langevin steps per update
    section.step_size = 1.0  # s in x <- x - s * dE/dx + noise_scale * eps
    section.noise_scale = 0.01  # σ; the chains' temperature is T = σ²/(2s)
    # Clamp image chains to [-1, 1] after every step (Nijkamp et al. do not); points: never.
    section.clamp = True
    # MH diagnostic chains target exp(-E/T) at the training T. Their step h, noise
    # sqrt(2·T·h); 0: the training step s (the proposal is the training Langevin step).
    section.mh_step_size = 0.0
    section.mh_target_acceptance = 0.0  # >0: adapt h on a K-step pilot towards it (0.57)
    section.init_low = -1.0  # chains start uniform in [init_low, init_high]
    section.init_high = 1.0
    section.data_noise = 0.03  # std of Gaussian noise added to data, [-1, 1] units
    section.persistent = False  # replay buffer of chains instead of fresh noise
    section.buffer_size = 10_000  # chains, rounded up to a multiple of the global batch
    section.rejuvenation = 0.05  # fraction of buffer chains restarted from noise
    section.energy_l2 = 0.0  # weight of mean E^2
    section.optim = optim.network_settings(energy={'lr': 1e-4})
    return section

  @staticmethod
  def smoke(section):
    section.n_steps = min(section.n_steps, 5)
    section.buffer_size = min(section.buffer_size, 64)

  def setup(self):
    self.nets = make_networks(self.model_config, self.data.x_shape, 'energy')
    check_config(self.hp, self.data.global_batch)
    self.x_shape = self.data.x_shape
    self.opt = self.optimizer('energy')
    self.clip = (-1.0, 1.0) if self.data.is_image and self.hp.clamp else None
    batch = self.data.global_batch
    self.buffer_rows = -(-self.hp.buffer_size // batch) * batch  # shards on any device count

  def init(self, key, example_batch):
    k_net, k_buffer = jax.random.split(key)
    x = example_batch['x'][:2]
    state = {'energy': base.init_network(self.nets.energy, self.opt, k_net, x),
             'step': jnp.zeros((), jnp.int32)}
    if self.hp.persistent:
      state[PER_EXAMPLE] = {'buffer': self.noise(k_buffer, self.buffer_rows)}
    return state

  def noise(self, key, n):
    """Uniform initial chains in [init_low, init_high]: (n, *x_shape)."""
    return jax.random.uniform(key, (n,) + self.x_shape, jnp.float32,
                              self.hp.init_low, self.hp.init_high)

  def energy(self, state, x):
    return base.apply_network(self.nets.energy, state['energy'], x)

  def density_temperature(self) -> float:
    """The training chains' T: the model density is exp(−E/T)."""
    return self.temperature

  @property
  def temperature(self) -> float:
    """T = σ²/(2s) of the training chains: for small s they sample ∝ exp(−E/T)."""
    if not (self.hp.step_size > 0 and self.hp.noise_scale > 0):
      raise EgmError(f'The MH-adjusted chains need a temperature noise_scale²/(2·step_size) > 0; '
                     f'ebm.step_size is {self.hp.step_size} and ebm.noise_scale is '
                     f'{self.hp.noise_scale}.')
    return self.hp.noise_scale ** 2 / (2 * self.hp.step_size)

  def run_chains(self, state, x0, key, n_steps=None, metropolis=False):
    """`n_steps` (default K) steps on the current energy from x0 (B, ...); no gradients.

    The training chain, or with `metropolis` the MH-adjusted chain on exp(−E/T) at the
    training temperature (module docstring). Returns (x (B, ...), LangevinInfo).
    """
    energy_fn = lambda x: self.energy(state, x)
    n_steps = n_steps or self.hp.n_steps
    if not metropolis:
      return langevin(energy_fn, x0, key, n_steps=n_steps, step_size=self.hp.step_size,
                      noise_scale=self.hp.noise_scale, stop_gradient=True, clip=self.clip)
    step = self.hp.mh_step_size or self.hp.step_size
    if self.hp.mh_target_acceptance:
      k_pilot, key = jax.random.split(key)
      step = adapt_step_size(energy_fn, x0, k_pilot, n_steps=self.hp.n_steps, step_size=step,
                             target_acceptance=self.hp.mh_target_acceptance,
                             temperature=self.temperature)
    return mala(energy_fn, x0, key, n_steps=n_steps, step_size=step,
                temperature=self.temperature, stop_gradient=True)

  def _initial_chains(self, state, key, n):
    """Noise, or buffer rows with a `rejuvenation` fraction replaced by noise; (x0, rows)."""
    k_noise, k_rows, k_fresh = jax.random.split(key, 3)
    fresh = self.noise(k_noise, n)
    if not self.hp.persistent:
      return fresh, None
    rows = jax.random.choice(k_rows, self.buffer_rows, (n,), replace=False)
    restart = jax.random.uniform(k_fresh, (n,)) < self.hp.rejuvenation
    restart = restart.reshape((n,) + (1,) * len(self.x_shape))
    return jnp.where(restart, fresh, state[PER_EXAMPLE]['buffer'][rows]), rows

  def chain_start(self, state, key, n):
    """Where the sampling chains start: noise, or random buffer chains if persistent; (n, ...)."""
    if not self.hp.persistent:
      return self.noise(key, n)
    rows = jax.random.choice(key, self.buffer_rows, (n,), replace=n > self.buffer_rows)
    return state[PER_EXAMPLE]['buffer'][rows]

  def loss(self, params, state, batch, key):
    """The update's objective at energy parameters `params`; (loss, (metrics, x_neg, rows)).

    mean E(x_data + data noise) − mean E(x_neg) + energy_l2·mean E² over both, where x_neg
    (B, ...) are K steps on E at `params` from `_initial_chains` (buffer `rows` or None),
    constants to the loss.
    """
    k_init, k_chain, k_data = jax.random.split(key, 3)
    x_data = batch['x']
    x_data = x_data + self.hp.data_noise * jax.random.normal(k_data, x_data.shape, x_data.dtype)
    net = base.with_params(state['energy'], params)
    x0, rows = self._initial_chains(state, k_init, x_data.shape[0])
    x_neg, info = self.run_chains(dict(state, energy=net), x0, k_chain)
    e = base.apply_network(self.nets.energy, net, jnp.concatenate([x_data, x_neg]))
    e_data, e_neg = jnp.split(e, 2)
    diff = jnp.mean(e_data) - jnp.mean(e_neg)
    metrics = {
        'loss': diff,
        'energy_data': jnp.mean(e_data),
        'energy_sample': jnp.mean(e_neg),
        'energy_diff': diff,
        'chain_grad_norm_first': info.grad_norm[0],
        'chain_grad_norm_last': info.grad_norm[-1],
        'sample_spread': spread_ratio(x_neg, x_data),
    }
    if self.clip is not None:
      metrics['clamp_fraction'] = clamp_fraction(x_neg, self.clip)
      metrics['data_clamp_fraction'] = clamp_fraction(batch['x'], self.clip)
    return diff + self.hp.energy_l2 * jnp.mean(jnp.square(e)), (metrics, x_neg, rows)

  def update(self, state, batch, key):
    grads, (metrics, x_neg, rows) = jax.grad(self.loss, has_aux=True)(
        state['energy']['params'], state, batch, key)
    metrics.update(gradient_norms({'energy': grads}))
    new_state = dict(state, energy=base.apply_gradients(state['energy'], grads, self.opt),
                     step=state['step'] + 1)
    if rows is not None:
      new_state[PER_EXAMPLE] = {'buffer': state[PER_EXAMPLE]['buffer'].at[rows].set(x_neg)}
    return new_state, metrics

  def sample(self, state, key, n):
    """n samples (n, ...): K training-chain steps from `chain_start` (noise or the buffer)."""
    k_start, k_chain = jax.random.split(key)
    return self.run_chains(state, self.chain_start(state, k_start, n), k_chain)[0]

  def trajectory(self, state, key, n, frames):
    """The chains of `sample` (same key) at frames + 1 evenly spaced steps of K.

    Returns (frames + 1, n, ...): the start (noise or buffer chains), ..., the samples.
    """
    k_start, k_chain = jax.random.split(key)
    return langevin_trajectory(lambda x: self.energy(state, x), self.chain_start(state, k_start, n),
                               k_chain, n_steps=self.hp.n_steps, frames=frames,
                               step_size=self.hp.step_size, noise_scale=self.hp.noise_scale,
                               clip=self.clip)

  def long_run(self, state, key, n, n_steps, metropolis=False):
    """`n_steps` steps from fresh noise (persistent models too), for the long-run diagnostics.

    Unadjusted, or MH-adjusted at the training temperature; (x, LangevinInfo).
    """
    k_init, k_chain = jax.random.split(key)
    return self.run_chains(state, self.noise(k_init, n), k_chain, n_steps, metropolis)
