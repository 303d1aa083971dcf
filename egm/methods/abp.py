"""Alternating back-propagation (Han et al., AAAI 2017, arXiv 1606.08571): a generator
learned without an encoder, its latents inferred by Langevin dynamics.

Model: x = g(z) + ε, z ~ N(0, I), ε ~ N(0, σ²I) (σ = `model.sigma`). With
U(z) = ‖mask·(x − g(z))‖²/(2σ²) + ‖z‖²/2 = −log p(x, z) + const, one update is

  1. inferential back-prop: K Langevin steps z ← z − δ²/2·∇U(z) + δ·ε on the batch's
     latents, warm-started from each example's latent of its previous visit (kept in
     `state['per_example']['z']`, one row per training example, sharded on `data`) or,
     with `abp.persistent=False`, from the prior;
  2. learning back-prop: θ descends mean ‖mask·(x − g_θ(z))‖²/(2σ²) at the inferred z
     (held fixed), the complete-data −log p(x, z) up to terms free of θ;
  3. the inferred latents are written back to the examples' rows.

The generator is the conv (or MLP) generator without BatchNorm: the chains differentiate
it, so each example's posterior must depend on that example alone (docs/methods/abp.md).

At test time `infer` runs `abp.test_steps` steps from the prior (Langevin, or gradient
descent on U with `abp.test_noise=False`), on the observed pixels when a mask is given;
`reconstruct` decodes them and `complete` fills the unobserved pixels with g(z).
"""
import jax
import jax.numpy as jnp
import ml_collections

from egm.errors import EgmError
from egm.methods import base, optim
from egm.methods.contract import PER_EXAMPLE, Method, register
from egm.methods.watch import Watch
from egm.nets import make_networks
from egm.sampling import delta_steps, posterior_langevin, warm_start


def check_config(hp, sigma) -> None:
  """Raises EgmError naming each `config.abp` key (and model.sigma) that cannot work."""
  problems = []
  for key in ('n_steps', 'test_steps'):
    if int(hp[key]) != hp[key] or hp[key] < 1:
      problems.append(f'abp.{key} is {hp[key]}: inference needs a whole number of steps >= 1 '
                      '(e.g. 30)')
  for key in ('step_size', 'test_step_size'):
    if not hp[key] > 0:
      problems.append(f'abp.{key} is {hp[key]}: the Langevin step δ must be > 0 (e.g. 0.1)')
  if not sigma > 0:
    problems.append(f'model.sigma is {sigma}: the observation noise std must be > 0 (e.g. 0.3)')
  if problems:
    raise EgmError('Bad abp settings: ' + '; '.join(problems) +
                   '. Fix them with --config.abp.<key>=<value> (or --config.model.sigma).')


@register('abp')
class ABP(base.InferredLatentGenerator, Method):
  """Generator only; latents by Langevin inference, persistent per training example."""
  watch = Watch(grad_norms=('chain_grad_norm_last',),
                knobs={'non_finite': ('abp.optim.generator.lr', 'abp.step_size', 'model.sigma'),
                       'grad_norm': ('abp.step_size', 'model.sigma')})

  @staticmethod
  def config_section():
    section = ml_collections.ConfigDict()
    section.n_steps = 30  # K Langevin steps of inference per update
    section.step_size = 0.1  # δ in z <- z - δ²/2·dU/dz + δ·eps
    section.persistent = True  # warm-start each example's chain from its last latent
    section.test_steps = 300  # steps of inference from the prior at test time
    section.test_step_size = 0.1  # δ at test time
    section.test_noise = True  # False: gradient descent on U at test time (the posterior mode)
    section.optim = optim.network_settings(generator={'lr': 3e-4})
    return section

  @staticmethod
  def smoke(section):
    section.n_steps = min(section.n_steps, 3)
    section.test_steps = min(section.test_steps, 5)

  def setup(self):
    check_config(self.hp, self.model_config.sigma)
    self.nets = make_networks(self.model_config, self.data.x_shape, 'generator',
                              options=self.GENERATOR_OPTIONS)
    self.sigma = self.model_config.sigma
    self.opt = self.optimizer('generator')

  def init(self, key, example_batch):
    k_net, k_z = jax.random.split(key)
    z = jnp.zeros((2,) + self.nets.z_shape, jnp.float32)
    rows = self.data.per_example_rows
    return {
        'generator': base.init_network(self.nets.generator, self.opt, k_net, z),
        PER_EXAMPLE: {'z': jax.random.normal(k_z, (rows,) + self.nets.z_shape, jnp.float32)},
        'step': jnp.zeros((), jnp.int32),
    }

  def run_inference(self, state, x, z0, key, n_steps, step_size, noise=True, mask=None):
    """n_steps of z ← z − δ²/2·∇U + δ·ε from z0 (noise=False: no ε); (z, LangevinInfo)."""
    return posterior_langevin(lambda z: self.generate(state, z), x, z0, key, sigma=self.sigma,
                              n_steps=n_steps, mask=mask, **delta_steps(step_size, noise))

  def update(self, state, batch, key):
    k_prior, k_chain = jax.random.split(key)
    x, mask, rows = batch['x'], batch.get('mask'), batch['index']
    table = state[PER_EXAMPLE]['z'] if self.hp.persistent else None
    z0 = warm_start(k_prior, (x.shape[0],) + self.nets.z_shape, table, rows)
    z, info = self.run_inference(state, x, z0, k_chain, self.hp.n_steps, self.hp.step_size,
                                 mask=mask)
    generator, rec, x_gen = self.learn_generator(state, x, z, mask)
    new_state = {
        'generator': generator,
        PER_EXAMPLE: {'z': state[PER_EXAMPLE]['z'].at[rows].set(z)},
        'step': state['step'] + 1,
    }
    metrics = {
        'loss': rec,
        'rec_mse': base.masked_mse(x, x_gen, mask),
        'prior': jnp.mean(0.5 * jnp.sum(jnp.square(z.reshape(z.shape[0], -1)), -1)),
        'posterior_energy_last': info.energy[-1],
        'chain_grad_norm_first': info.grad_norm[0],
        'chain_grad_norm_last': info.grad_norm[-1],
    }
    return new_state, metrics

  def infer(self, state, x, key, mask=None):
    """Latents of x (B, ...) by `abp.test_steps` steps from the prior: (B, *z_shape)."""
    k_prior, k_chain = jax.random.split(key)
    z0 = jax.random.normal(k_prior, (x.shape[0],) + self.nets.z_shape, jnp.float32)
    z, _ = self.run_inference(state, x, z0, k_chain, self.hp.test_steps,
                              self.hp.test_step_size, self.hp.test_noise, mask)
    return z
