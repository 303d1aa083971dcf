"""The divergence triangle (Han et al. 2019, arXiv 1812.10907): G, E and I learned jointly.

Three joint distributions — data with the encoder q(x)q_I(z|x), the generator
p(z)p_G(x|z), and the EBM π_E(x) — are pulled together by the objective

  rec(x, G(z_inf)) + KL(q_I(z|x) ‖ p(z))            [data ↔ generator, through I]
  + λ·(−log q_I(z | G(z)))                           [generator ↔ encoder]
  + w·E(G(z)) + mean E(x) − mean E(G(z))             [generator ↔ EBM ↔ data]

with z ~ p(z) and z_inf ~ q_I(z|x). Each network descends its own part: E the
contrastive term, G the reconstruction, w·E(G(z)) and the −log q term, I the
reconstruction, KL and −log q terms. Every term is a mean over the batch.

Update order (`triangle.update_order`):
  'joint' (default): one scalar whose parameter gradients are exactly those parts (E's
    parameters are held fixed in E(G(z)), G's output is held fixed in the contrastive
    term), so one backward pass serves all, every network at the same parameters.
  'sequential': the authors' code: E steps on its part, then I on its part (with G as it
    was), then G on its part with the new E and the new I, each its own backward pass. With
    a mask, E's data are the observed pixels completed by G(mean of I) in evaluation mode.

G and I (BatchNorm) run once per batch they see, so batch statistics never mix batches:
G on z ~ p(z), then G on z_inf (G's running statistics are updated by the prior pass and
then by the reconstruction pass, as each training-mode forward pass does in the authors'
code); I on the data (its running statistics are kept) and I on G(z) (they are not).

Loss forms (`triangle.loss_form`), per example before the batch mean:
  'gaussian': rec = Σ_pixels (x − G(z_inf))²/(2σ²) with σ = `model.sigma`, KL summed over
    the z dimensions: the negative ELBO of x = G(z) + N(0, σ²).
  'reference_code': rec = Σ_pixels (x − G(z_inf))² (weight 1, σ unused) and KL averaged
    over the z dimensions (1/z_dim of the sum), as in the authors' train_cifar10.py.
In both, −log q(z|G(z)) is the full Gaussian negative log density summed over z (the
authors omit its constant 0.5·log 2π per dimension, which moves no gradient).

Incomplete data: with `batch['mask']` (1 = observed) the reconstruction covers
observed pixels only, the encoder sees [x·mask, mask] (`LatentGenerator.encoder_input`),
and E sees the observed pixels completed by G(z_inf).
"""
import jax
import jax.numpy as jnp
import ml_collections

from egm.errors import EgmError
from egm.methods import base, optim
from egm.methods.watch import gradient_norms
from egm.methods.contract import register
from egm.methods.watch import Watch, spread_ratio
from egm.nets import make_networks

UPDATE_ORDERS = ('joint', 'sequential')


@register('triangle')
class Triangle(base.LatentGenerator, base.JointLossMethod):
  """Generator + energy + encoder, amortized; no MCMC."""
  capabilities = base.LatentGenerator.capabilities | {'energy'}
  watch = Watch(
      energies=('energy_data', 'energy_gen'),
      grad_norms=('grad_norm_energy', 'grad_norm_generator', 'grad_norm_encoder'),
      energy_gap=('energy_data', 'energy_gen'), spread='generator_spread',
      knobs={'non_finite': ('triangle.optim.energy.lr', 'triangle.optim.generator.lr',
                            'triangle.optim.encoder.lr'),
             'energy': ('triangle.optim.energy.lr', 'triangle.energy_l2'),
             'grad_norm': ('triangle.optim.energy.lr', 'optim.grad_clip'),
             'energy_gap': ('triangle.optim.energy.lr', 'triangle.energy_l2',
                            'triangle.energy_weight'),
             'flat_energy': ('triangle.optim.energy.lr',),
             'collapse': ('triangle.optim.generator.lr', 'triangle.energy_weight',
                          'triangle.entropy_weight')})

  @staticmethod
  def config_section():
    section = ml_collections.ConfigDict()
    section.entropy_weight = 0.1  # weight of -log q(z|G(z)) in the I and G losses
    section.energy_weight = 1.0  # weight of E(G(z)) in the G loss
    section.energy_l2 = 0.0  # weight of mean E^2 regulariser on the EBM
    # 'gaussian': rec /(2 sigma^2), KL summed over z | 'reference_code': rec weight 1,
    # KL averaged over z (the authors' code); see the module docstring
    section.loss_form = 'gaussian'
    # 'joint': one backward pass at the same parameters | 'sequential': E, then I, then G,
    # each seeing the networks updated before it (the authors' code)
    section.update_order = 'joint'
    section.optim = optim.network_settings(energy={'lr': 1e-4}, generator={'lr': 3e-4},
                                           encoder={'lr': 3e-4})
    return section

  def setup(self):
    base.check_loss_form(self.hp.loss_form, 'triangle.loss_form')
    if self.hp.update_order not in UPDATE_ORDERS:
      raise EgmError(f'config.triangle.update_order is {self.hp.update_order!r}; it must be '
                     f'one of {", ".join(UPDATE_ORDERS)} (see egm/methods/triangle.py).')
    self.nets = make_networks(self.model_config, self.data.x_shape,
                              'energy', 'generator', 'encoder')
    self.z_dim = self.model_config.z_dim
    self.sigma = self.model_config.sigma
    self.opt = {name: self.optimizer(name) for name in ('energy', 'generator', 'encoder')}

  def init(self, key, example_batch):
    x = example_batch['x'][:2]
    z = jnp.zeros((x.shape[0], self.z_dim), jnp.float32)
    k_e, k_g, k_i = jax.random.split(key, 3)
    return {
        'energy': base.init_network(self.nets.energy, self.opt['energy'], k_e, x),
        'generator': base.init_network(self.nets.generator, self.opt['generator'], k_g, z),
        'encoder': base.init_network(self.nets.encoder, self.opt['encoder'], k_i,
                                     self.encoder_input(x)),
        'step': jnp.zeros((), jnp.int32),
    }

  def reconstruction_and_kl(self, x, x_rec, mu, logvar, mask=None):
    """Per-example rec and KL terms of `loss_form`: (B, ...), (B, z) -> (B,), (B,)."""
    return base.reconstruction_and_kl(self.hp.loss_form, x, x_rec, mu, logvar, self.sigma, mask)

  def update(self, state, batch, key):
    if self.hp.update_order == 'sequential':
      return self.update_sequential(state, batch, key)
    return super().update(state, batch, key)

  def _apply(self, name, net, *inputs, train=True):
    return base.apply_network(getattr(self.nets, name), net, *inputs, train=train)

  def update_sequential(self, state, batch, key):
    """E, then I, then G, each an optimiser step on its own part of the objective, each
    seeing the networks updated before it (module docstring)."""
    hp, x, mask = self.hp, batch['x'], batch.get('mask')
    b = x.shape[0]
    k_prior, k_post_i, k_post_g = jax.random.split(key, 3)
    z_prior = jax.random.normal(k_prior, (b, self.z_dim), jnp.float32)
    generator, encoder = state['generator'], state['encoder']
    x_gen, g_stats = self._apply('generator', generator, z_prior)
    x_gen = jax.lax.stop_gradient(x_gen)
    x_data = x
    if mask is not None:
      mu, _ = self._apply('encoder', encoder, self.encoder_input(x, mask), train=False)
      x_data = mask * x + (1.0 - mask) * self._apply('generator', generator, mu, train=False)

    def energy_loss(params):
      e = self._apply('energy', base.with_params(state['energy'], params),
                      jnp.concatenate([x_data, x_gen]), train=False)
      e_data, e_gen = e[:b], e[b:]
      contrastive = jnp.mean(e_data) - jnp.mean(e_gen)
      return contrastive + hp.energy_l2 * jnp.mean(jnp.square(e)), (contrastive, e_data, e_gen)

    (e_loss, (contrastive, e_data, e_gen)), e_grads = jax.value_and_grad(
        energy_loss, has_aux=True)(state['energy']['params'])
    energy = base.apply_gradients(state['energy'], e_grads, self.opt['energy'])

    def encoder_loss(params):
      net = base.with_params(encoder, params)
      (mu, logvar), i_stats = self._apply('encoder', net, self.encoder_input(x, mask))
      x_rec, stats = self._apply('generator', base.with_batch_stats(generator, g_stats),
                                 base.reparameterize(k_post_i, mu, logvar))
      (mu_gen, logvar_gen), _ = self._apply('encoder', base.with_batch_stats(net, i_stats),
                                            self.encoder_input(x_gen))
      rec, kl = self.reconstruction_and_kl(x, x_rec, mu, logvar, mask)
      neg_log_q = base.gaussian_neg_log_density(z_prior, mu_gen, logvar_gen)
      loss = jnp.mean(rec) + jnp.mean(kl) + hp.entropy_weight * jnp.mean(neg_log_q)
      return loss, (i_stats, stats, rec, kl, neg_log_q, x_rec)

    (_, (i_stats, g_stats, rec, kl, neg_log_q, x_rec)), i_grads = jax.value_and_grad(
        encoder_loss, has_aux=True)(encoder['params'])
    encoder = base.apply_gradients(encoder, i_grads, self.opt['encoder'], i_stats)

    (mu, logvar), _ = self._apply('encoder', encoder, self.encoder_input(x, mask))
    z_inf = base.reparameterize(k_post_g, jax.lax.stop_gradient(mu),
                                jax.lax.stop_gradient(logvar))

    def generator_loss(params):
      net = base.with_params(base.with_batch_stats(generator, g_stats), params)
      x_rec, stats = self._apply('generator', net, z_inf)
      x_fake, _ = self._apply('generator', base.with_batch_stats(net, stats), z_prior)
      rec, _ = self.reconstruction_and_kl(x, x_rec, mu, logvar, mask)
      (mu_gen, logvar_gen), _ = self._apply('encoder', encoder, self.encoder_input(x_fake))
      e_fake = self._apply('energy', energy, x_fake, train=False)
      loss = (jnp.mean(rec) + hp.energy_weight * jnp.mean(e_fake) + hp.entropy_weight
              * jnp.mean(base.gaussian_neg_log_density(z_prior, mu_gen, logvar_gen)))
      return loss, (stats, jnp.mean(e_fake))

    (_, (g_stats, e_fake)), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(
        generator['params'])
    generator = base.apply_gradients(generator, g_grads, self.opt['generator'], g_stats)
    total = (jnp.mean(rec) + jnp.mean(kl) + hp.entropy_weight * jnp.mean(neg_log_q)
             + hp.energy_weight * e_fake + e_loss)  # the joint objective's terms, as they ran
    metrics = {
        'loss': total, 'energy_data': jnp.mean(e_data), 'energy_gen': jnp.mean(e_gen),
        'contrastive': contrastive, 'rec': jnp.mean(rec),
        'rec_mse': base.masked_mse(x, x_rec, mask), 'kl': jnp.mean(kl),
        'neg_log_q': jnp.mean(neg_log_q), 'generator_spread': spread_ratio(x_gen, x, mask),
        **gradient_norms({'energy': e_grads, 'encoder': i_grads, 'generator': g_grads})}
    return ({'energy': energy, 'generator': generator, 'encoder': encoder,
             'step': state['step'] + 1}, metrics)

  def loss(self, params, state, batch, key, z_prior=None):
    """The joint objective; returns (scalar, (metrics, new batch stats)).

    z_prior: the (B, z_dim) draws of p(z); drawn from `key` when None.
    """
    x, mask = batch['x'], batch.get('mask')
    b = x.shape[0]
    energy_net = base.with_params(state['energy'], params['energy'])
    generator = base.with_params(state['generator'], params['generator'])
    encoder = base.with_params(state['encoder'], params['encoder'])
    k_prior, k_post = jax.random.split(key)
    if z_prior is None:
      z_prior = jax.random.normal(k_prior, (b, self.z_dim), jnp.float32)

    (mu, logvar), i_stats = base.apply_network(
        self.nets.encoder, encoder, self.encoder_input(x, mask), train=True)
    z_inf = base.reparameterize(k_post, mu, logvar)
    x_gen, g_stats = base.apply_network(self.nets.generator, generator, z_prior, train=True)
    x_rec, g_stats = base.apply_network(
        self.nets.generator, base.with_batch_stats(generator, g_stats), z_inf, train=True)
    (mu_gen, logvar_gen), _ = base.apply_network(self.nets.encoder, encoder,
                                                 self.encoder_input(x_gen), train=True)

    rec, kl = self.reconstruction_and_kl(x, x_rec, mu, logvar, mask)
    neg_log_q = base.gaussian_neg_log_density(z_prior, mu_gen, logvar_gen)

    x_data = x if mask is None else mask * x + (1.0 - mask) * jax.lax.stop_gradient(x_rec)
    e_both = base.apply_network(self.nets.energy, energy_net,
                                jnp.concatenate([x_data, jax.lax.stop_gradient(x_gen)]))
    e_data, e_gen = e_both[:b], e_both[b:]
    fixed_energy = base.with_params(energy_net, jax.lax.stop_gradient(params['energy']))
    e_gen_for_g = base.apply_network(self.nets.energy, fixed_energy, x_gen)

    contrastive = jnp.mean(e_data) - jnp.mean(e_gen)
    total = (jnp.mean(rec) + jnp.mean(kl) + self.hp.entropy_weight * jnp.mean(neg_log_q)
             + self.hp.energy_weight * jnp.mean(e_gen_for_g) + contrastive
             + self.hp.energy_l2 * jnp.mean(jnp.square(e_both)))
    metrics = {
        'loss': total,
        'energy_data': jnp.mean(e_data),
        'energy_gen': jnp.mean(e_gen),
        'contrastive': contrastive,
        'rec': jnp.mean(rec),
        'rec_mse': base.masked_mse(x, x_rec, mask),
        'kl': jnp.mean(kl),
        'neg_log_q': jnp.mean(neg_log_q),
        'generator_spread': spread_ratio(x_gen, x, mask),
    }
    return total, (metrics, {'generator': g_stats, 'encoder': i_stats})

  def energy(self, state, x):
    return base.apply_network(self.nets.energy, state['energy'], x)
