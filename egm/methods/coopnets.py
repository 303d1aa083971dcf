"""CoopNets: a descriptor (EBM) and a generator trained by MCMC teaching (arXiv 1609.09408).

One update:
  1. the generator proposes x̂ = G(z), z ~ N(0, I);
  2. K Langevin steps on the descriptor revise x̂ → x̃:
     y ← y − δ²/2·∇E(y) + δ·ε, where E includes the Gaussian reference
     ‖y‖²/(2σ²) when `model.energy_reference_std` = σ > 0;
  3. the descriptor descends mean E(x_data) − mean E(x̃);
  4. optionally `coopnets.infer_steps` z-space Langevin steps infer z' for x̃
     from z (posterior of x̃ = G(z) + N(0, σ_g²), σ_g = `model.sigma`; egm's posterior
     sampler with G in evaluation mode, so each chain is its example's alone), else z' = z;
  5. the generator descends ‖x̃ − G(z')‖²/(2σ_g²): it learns where the
     descriptor's Langevin dynamics took its own proposals.
The chains are constants to both losses (`loss`). With `coopnets.clamp`, image
revisions are clamped to [-1, 1] after every step (the reference does not clamp).
`trajectory` shows the chain of `sample`: the proposal, then the revision.
Pattern completion (`complete`) infers z on the observed pixels, fills the
missing ones with G(z), then runs descriptor Langevin on the missing pixels
only; the fill is the mean of
`coopnets.completion_samples` such posterior samples (their average estimates the
posterior mean, the fill of least expected squared error; one sample errs twice the
posterior variance).
"""
import jax
import jax.numpy as jnp
import ml_collections

from egm.errors import EgmError
from egm.methods import base, optim
from egm.methods.contract import Method, register
from egm.methods.watch import Watch, clamp_fraction, gradient_norms, spread_ratio
from egm.nets import make_networks, texture_latent_shape
from egm.sampling import delta_steps, langevin, langevin_trajectory, posterior_langevin


def check_config(hp) -> None:
  """Raises EgmError naming the `config.coopnets` key that cannot work."""
  problems = []
  for key in ('n_steps', 'infer_steps', 'completion_infer_steps', 'completion_samples'):
    if int(hp[key]) != hp[key] or hp[key] < 0:
      problems.append(f'coopnets.{key} is {hp[key]}: a whole number of steps >= 0')
  if hp.n_steps < 1:
    problems.append(f'coopnets.n_steps is {hp.n_steps}: the revision needs K >= 1 steps (e.g. 15)')
  if hp.completion_infer_steps < 1:
    problems.append(f'coopnets.completion_infer_steps is {hp.completion_infer_steps}: pattern '
                    'completion infers z with >= 1 steps (e.g. 100)')
  if hp.completion_samples < 1:
    problems.append(f'coopnets.completion_samples is {hp.completion_samples}: the fill averages '
                    '>= 1 completions (e.g. 8)')
  for key in ('step_size', 'infer_step_size', 'energy_l2'):
    if hp[key] < 0:
      problems.append(f'coopnets.{key} is {hp[key]}: it is a magnitude and must be >= 0')
  if problems:
    raise EgmError('Bad coopnets settings: ' + '; '.join(problems) +
                   '. Fix them with --config.coopnets.<key>=<value>.')


@register('coopnets')
class CoopNets(Method):
  """Descriptor E and generator G; samples are G's proposals revised by Langevin on E."""
  capabilities = frozenset({'energy', 'proposals', 'synthesize', 'complete', 'trajectory',
                            'infer'})
  watch = Watch(
      energies=('energy_data', 'energy_revised'),
      grad_norms=('grad_norm_energy', 'grad_norm_generator', 'chain_grad_norm_last'),
      energy_gap=('energy_data', 'energy_revised'), clamp_fraction='clamp_fraction',
      data_clamp_fraction='data_clamp_fraction',
      spread='proposal_spread',
      knobs={'non_finite': ('coopnets.optim.energy.lr', 'coopnets.optim.generator.lr',
                            'coopnets.step_size'),
             'energy': ('coopnets.optim.energy.lr', 'coopnets.energy_l2'),
             'grad_norm': ('coopnets.optim.energy.lr', 'coopnets.step_size'),
             'energy_gap': ('coopnets.optim.energy.lr', 'coopnets.step_size',
                            'coopnets.n_steps'),
             'flat_energy': ('coopnets.optim.energy.lr',),
             'clamp': ('coopnets.step_size', 'coopnets.clamp'),
             'collapse': ('coopnets.optim.generator.lr', 'model.sigma')})

  @staticmethod
  def config_section():
    section = ml_collections.ConfigDict()
    section.n_steps = 15  # K descriptor Langevin steps revising each proposal
    section.step_size = 0.002  # δ in y <- y - δ²/2 dE/dy + δ·eps (unit temperature)
    # Clamp image revisions to [-1, 1] after every step (Xie et al. do not); points: never.
    section.clamp = True
    section.infer_steps = 0  # z-space Langevin steps inferring z for the revised x (0: off)
    section.infer_step_size = 0.1  # δ_z of the z-space Langevin
    section.completion_infer_steps = 100  # z-space steps on observed pixels in completion
    section.completion_samples = 8  # completions averaged into the fill (1: one sample)
    section.energy_l2 = 0.0  # weight of mean E^2 on the descriptor
    section.optim = optim.network_settings(energy={'lr': 1e-4}, generator={'lr': 3e-4})
    return section

  @staticmethod
  def smoke(section):
    section.n_steps = min(section.n_steps, 3)
    section.infer_steps = min(section.infer_steps, 2)
    section.completion_infer_steps = min(section.completion_infer_steps, 3)
    section.completion_samples = min(section.completion_samples, 2)

  def setup(self):
    check_config(self.hp)
    self.nets = make_networks(self.model_config, self.data.x_shape, 'energy', 'generator')
    self.sigma = self.model_config.sigma
    self.z_dim = self.model_config.z_dim
    self.x_shape = self.data.x_shape
    self.opt = {name: self.optimizer(name) for name in ('energy', 'generator')}
    delta = self.hp.step_size
    self.chain = {'step_size': 0.5 * delta ** 2, 'noise_scale': delta,
                  'clip': (-1.0, 1.0) if self.data.is_image and self.hp.clamp else None}

  def init(self, key, example_batch):
    x = example_batch['x'][:2]
    k_e, k_g = jax.random.split(key)
    z = jnp.zeros((x.shape[0],) + self.nets.z_shape, jnp.float32)
    return {
        'energy': base.init_network(self.nets.energy, self.opt['energy'], k_e, x),
        'generator': base.init_network(self.nets.generator, self.opt['generator'], k_g, z),
        'step': jnp.zeros((), jnp.int32),
    }

  def energy(self, state, x):
    return base.apply_network(self.nets.energy, state['energy'], x)

  def _generate(self, state, z, train):
    """G(z); in training mode the batch's own BatchNorm statistics (not stored)."""
    out = base.apply_network(self.nets.generator, state['generator'], z, train=train)
    return out[0] if train else out

  def revise(self, state, x, key, n_steps=None, mask=None):
    """Descriptor Langevin from x (B, ...): y ← y − δ²/2·∇E(y) + δ·ε; (x̃, LangevinInfo).

    With `mask` (1 = observed, broadcasting to x) only the unobserved entries move.
    """
    energy_fn = lambda y: self.energy(state, y)
    if mask is not None:
      energy_fn = lambda y: self.energy(state, mask * x + (1.0 - mask) * y)
    y, info = langevin(energy_fn, x, key, n_steps=n_steps or self.hp.n_steps,
                       stop_gradient=True, **self.chain)
    return (y if mask is None else mask * x + (1.0 - mask) * y), info

  def infer_latents(self, state, x, z0, key, n_steps, mask=None):
    """z-space Langevin on −log p(z | x) from z0: z ← z − δ_z²/2·∇ + δ_z·ε; (B, *z_shape).

    The generator runs in evaluation mode (its running BatchNorm statistics) inside the
    chain, in training and at test time alike, so each example's chain depends on that
    example alone, not on the other rows of its batch.
    """
    z, _ = posterior_langevin(lambda z: self._generate(state, z, train=False), x, z0, key,
                              sigma=self.sigma, n_steps=n_steps, mask=mask,
                              **delta_steps(self.hp.infer_step_size))
    return z

  def infer(self, state, x, key, mask=None):
    """Latents of x (B, ...) by `coopnets.completion_infer_steps` z-space steps from the
    prior, on the observed pixels when `mask` is given: (B, *z_shape)."""
    k_z, k_chain = jax.random.split(key)
    z0 = jax.random.normal(k_z, (x.shape[0],) + self.latent_shape(x.shape[1]), jnp.float32)
    return self.infer_latents(state, x, z0, k_chain, self.hp.completion_infer_steps, mask)

  def loss(self, params, state, batch, key):
    """Both objectives at `params` {'energy', 'generator'}: (sum, (metrics, G's batch stats)).

    descriptor: mean E(x_data) − mean E(x̃) (+ energy_l2·mean E² over both); generator:
    mean ‖x̃ − G(z')‖²/(2σ_g²). x̃ (the revised proposals) and z' are computed at `params`
    and are constants to both, so each network (they share no parameters) gets exactly
    the gradient of its own objective.
    """
    k_z, k_revise, k_infer = jax.random.split(key, 3)
    nets = {name: base.with_params(state[name], params[name]) for name in params}
    current = dict(state, **nets)
    x_data = batch['x']
    z = jax.random.normal(k_z, (x_data.shape[0],) + self.nets.z_shape, jnp.float32)
    x_proposed = self._generate(current, z, train=True)
    x_revised, info = self.revise(current, x_proposed, k_revise)
    if self.hp.infer_steps:
      z = self.infer_latents(current, x_revised, z, k_infer, self.hp.infer_steps)
    e = base.apply_network(self.nets.energy, nets['energy'], jnp.concatenate([x_data, x_revised]))
    e_data, e_revised = jnp.split(e, 2)
    diff = jnp.mean(e_data) - jnp.mean(e_revised)
    x_gen, g_stats = base.apply_network(self.nets.generator, nets['generator'], z, train=True)
    g_loss = jnp.mean(base.gaussian_reconstruction(x_revised, x_gen, self.sigma))
    metrics = {
        'loss': diff,
        'energy_data': jnp.mean(e_data),
        'energy_revised': jnp.mean(e_revised),
        'energy_diff': diff,
        'generator_loss': g_loss,
        'revision_mse': base.masked_mse(x_revised, x_proposed),
        'chain_grad_norm_first': info.grad_norm[0],
        'chain_grad_norm_last': info.grad_norm[-1],
        'proposal_spread': spread_ratio(x_proposed, x_data),
    }
    if self.chain['clip'] is not None:
      metrics['clamp_fraction'] = clamp_fraction(x_revised, self.chain['clip'])
      metrics['data_clamp_fraction'] = clamp_fraction(x_data, self.chain['clip'])
    return diff + self.hp.energy_l2 * jnp.mean(jnp.square(e)) + g_loss, (metrics, g_stats)

  def update(self, state, batch, key):
    params = {name: state[name]['params'] for name in ('energy', 'generator')}
    grads, (metrics, g_stats) = jax.grad(self.loss, has_aux=True)(params, state, batch, key)
    metrics.update(gradient_norms(grads))
    new_state = {
        'energy': base.apply_gradients(state['energy'], grads['energy'], self.opt['energy']),
        'generator': base.apply_gradients(state['generator'], grads['generator'],
                                          self.opt['generator'], g_stats),
        'step': state['step'] + 1,
    }
    return new_state, metrics

  def latent_shape(self, side=None):
    """Per-example latent shape; for the texture nets, that of side x side images."""
    if side is None or len(self.nets.z_shape) == 1:
      return self.nets.z_shape
    return texture_latent_shape(side, self.z_dim)

  def generator_sample(self, state, key, n, side=None):
    """The generator's proposals G(z), z ~ N(0, I): (n, ...); `side` for texture nets."""
    z = jax.random.normal(key, (n,) + self.latent_shape(side), jnp.float32)
    return self._generate(state, z, train=False)

  def sample(self, state, key, n, side=None):
    """The model's samples: proposals revised by K descriptor Langevin steps."""
    k_gen, k_revise = jax.random.split(key)
    return self.revise(state, self.generator_sample(state, k_gen, n, side), k_revise)[0]

  def trajectory(self, state, key, n, frames):
    """The chains of `sample` (same key): the proposals G(z), then the revision at `frames`
    evenly spaced steps of K; (frames + 1, n, ...)."""
    k_gen, k_revise = jax.random.split(key)
    return langevin_trajectory(lambda y: self.energy(state, y),
                               self.generator_sample(state, k_gen, n), k_revise,
                               n_steps=self.hp.n_steps, frames=frames, **self.chain)

  def synthesize(self, state, key, n, side):
    """n textures of side x side pixels (texture nets; any side divisible by 4): revised samples."""
    return self.sample(state, key, n, side)

  def complete(self, state, x, mask, key):
    """Fills the unobserved pixels of x (B, ...) where mask (B, H, W, 1) is 0.

    Each of `completion_samples` completions infers z from N(0, I) by
    `completion_infer_steps` Langevin steps on the observed pixels, fills the holes
    with G(z), then runs K descriptor steps on the unobserved pixels only; the
    returned fill (B, ...) is their mean.
    """
    if mask.shape[0] != x.shape[0]:
      raise EgmError(f'mask has {mask.shape[0]} rows for {x.shape[0]} images: give one per image.')
    n = self.hp.completion_samples
    xs, masks = jnp.repeat(x, n, axis=0), jnp.repeat(mask, n, axis=0)
    k_z, k_infer, k_revise = jax.random.split(key, 3)
    z0 = jax.random.normal(k_z, (xs.shape[0],) + self.latent_shape(x.shape[1]), jnp.float32)
    z = self.infer_latents(state, xs, z0, k_infer, self.hp.completion_infer_steps, masks)
    filled = masks * xs + (1.0 - masks) * self._generate(state, z, train=False)
    completions = self.revise(state, filled, k_revise, mask=masks)[0]
    return jnp.mean(completions.reshape((x.shape[0], n) + x.shape[1:]), axis=1)
