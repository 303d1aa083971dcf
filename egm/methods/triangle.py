"""The divergence triangle (Han et al. 2019, arXiv 1812.10907): G, E and I learned jointly.

Three joint distributions — data with the encoder q(x)q_I(z|x), the generator
p(z)p_G(x|z), and the EBM π_E(x) — are pulled together by the objective

  rec(x, G(z_inf)) + KL(q_I(z|x) ‖ p(z))            [data ↔ generator, through I]
  + λ·(−log q_I(z | G(z)))                           [generator ↔ encoder]
  + w·E(G(z)) + mean E(x) − mean E(G(z))             [generator ↔ EBM ↔ data]

with z ~ p(z) and z_inf ~ q_I(z|x). Each network descends its own part: E the
contrastive term, G the reconstruction, w·E(G(z)) and the −log q term, I the
reconstruction, KL and −log q terms. Written as one scalar whose parameter
gradients are exactly those parts (E's parameters are held fixed in E(G(z)), G's
output is held fixed in the contrastive term), so one backward pass serves all.
Every term is a mean over the batch.

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
from egm.methods.contract import register
from egm.methods.watch import Watch, spread_ratio
from egm.nets import make_networks

LOSS_FORMS = ('gaussian', 'reference_code')


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
    section.optim = optim.network_settings(energy={'lr': 1e-4}, generator={'lr': 3e-4},
                                           encoder={'lr': 3e-4})
    return section

  def setup(self):
    if self.hp.loss_form not in LOSS_FORMS:
      raise EgmError(f'config.triangle.loss_form is {self.hp.loss_form!r}; it must be one of '
                     f'{", ".join(LOSS_FORMS)} (see egm/methods/triangle.py).')
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
    kl = base.gaussian_kl(mu, logvar)
    if self.hp.loss_form == 'reference_code':  # 2·Σ/(2·1²) = Σ (x − x_rec)²
      return 2.0 * base.gaussian_reconstruction(x, x_rec, 1.0, mask), kl / self.z_dim
    return base.gaussian_reconstruction(x, x_rec, self.sigma, mask), kl

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
