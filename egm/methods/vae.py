"""Plain VAE with the triangle's generator and encoder: the baseline every hybrid must beat."""
import jax
import jax.numpy as jnp
import ml_collections

from egm.errors import EgmError
from egm.methods import base, optim
from egm.methods.contract import register
from egm.methods.watch import Watch, spread_ratio
from egm.nets import make_networks
from egm.sampling import delta_steps, posterior_langevin

COMPLETIONS = ('encoder', 'latent_inference')


@register('vae')
class VAE(base.LatentGenerator, base.JointLossMethod):
  """Loss per example: ‖mask·(x − G(z))‖²/(2σ²) + KL(q(z|x) ‖ N(0, I)), z ~ q(z|x), the
  negative ELBO of x = G(z) + N(0, σ²) on the observed pixels (mask 1 = observed; the
  encoder sees [x·mask, mask], see `LatentGenerator.encoder_input`); with
  `vae.loss_form='reference_code'` the reconstruction and KL of the triangle's reference code
  (`base.reconstruction_and_kl`). A triangle config sets `vae.loss_form` to its triangle's,
  so its VAE baseline differs from the triangle by the energy and the cross terms alone.

  `complete` fills the unobserved pixels with G(z): z the encoder's mean of the observed
  pixels (`vae.completion='encoder'`), or that mean refined by `vae.completion_steps` steps of
  gradient descent on the latent posterior energy over the observed pixels alone
  (`'latent_inference'`, as abp completes: the baseline abp's completion is measured
  against, since the encoder never saw a mask in training)."""
  capabilities = base.LatentGenerator.capabilities | {'complete'}
  watch = Watch(
      grad_norms=('grad_norm_generator', 'grad_norm_encoder'), spread='reconstruction_spread',
      knobs={'non_finite': ('vae.optim.generator.lr', 'vae.optim.encoder.lr', 'model.sigma'),
             'grad_norm': ('vae.optim.generator.lr', 'vae.optim.encoder.lr', 'optim.grad_clip'),
             'collapse': ('model.sigma', 'vae.optim.encoder.lr')})

  @staticmethod
  def smoke(section):
    section.completion_steps = min(section.completion_steps, 3)

  def setup(self):
    base.check_loss_form(self.hp.loss_form, 'vae.loss_form')
    if self.hp.completion not in COMPLETIONS:
      raise EgmError(f'config.vae.completion is {self.hp.completion!r}; it must be one of '
                     f'{", ".join(COMPLETIONS)}.')
    self.nets = make_networks(self.model_config, self.data.x_shape, 'generator', 'encoder')
    self.z_dim = self.model_config.z_dim
    self.sigma = self.model_config.sigma
    self.opt = {name: self.optimizer(name) for name in ('generator', 'encoder')}

  @staticmethod
  def config_section():
    section = ml_collections.ConfigDict()
    # 'gaussian': rec /(2 sigma^2), KL summed over z | 'reference_code': rec weight 1, KL
    # averaged over z (the triangle's reference code; base.reconstruction_and_kl)
    section.loss_form = 'gaussian'
    section.completion = 'encoder'  # 'encoder' | 'latent_inference' (see the class docstring)
    section.completion_steps = 300  # gradient-descent steps of 'latent_inference'
    section.completion_step_size = 0.1  # δ of z <- z - δ²/2·dU/dz
    section.optim = optim.network_settings(generator={'lr': 3e-4}, encoder={'lr': 3e-4})
    return section

  def init(self, key, example_batch):
    x = example_batch['x'][:2]
    z = jnp.zeros((x.shape[0], self.z_dim), jnp.float32)
    k_g, k_i = jax.random.split(key)
    return {
        'generator': base.init_network(self.nets.generator, self.opt['generator'], k_g, z),
        'encoder': base.init_network(self.nets.encoder, self.opt['encoder'], k_i,
                                     self.encoder_input(x)),
        'step': jnp.zeros((), jnp.int32),
    }

  def loss(self, params, state, batch, key):
    x, mask = batch['x'], batch.get('mask')
    generator = base.with_params(state['generator'], params['generator'])
    encoder = base.with_params(state['encoder'], params['encoder'])
    (mu, logvar), i_stats = base.apply_network(
        self.nets.encoder, encoder, self.encoder_input(x, mask), train=True)
    z = base.reparameterize(key, mu, logvar)
    x_rec, g_stats = base.apply_network(self.nets.generator, generator, z, train=True)
    rec, kl = base.reconstruction_and_kl(self.hp.loss_form, x, x_rec, mu, logvar, self.sigma,
                                         mask)
    total = jnp.mean(rec + kl)
    metrics = {'loss': total, 'rec': jnp.mean(rec), 'kl': jnp.mean(kl),
               'rec_mse': base.masked_mse(x, x_rec, mask),
               'reconstruction_spread': spread_ratio(x_rec, x, mask)}
    return total, (metrics, {'generator': g_stats, 'encoder': i_stats})

  def complete(self, state, x, mask, key):
    """x (B, ...) with its mask-0 pixels filled by G(z), z inferred from the mask-1 pixels."""
    if mask.shape[0] != x.shape[0]:
      raise EgmError(f'mask has {mask.shape[0]} rows for {x.shape[0]} images: give one per image.')
    z = self.infer(state, mask * x, key, mask)
    if self.hp.completion == 'latent_inference':
      z, _ = posterior_langevin(lambda z: self.generate(state, z), x, z, key, sigma=self.sigma,
                                n_steps=self.hp.completion_steps, mask=mask,
                                **delta_steps(self.hp.completion_step_size, noise=False))
    return mask * x + (1.0 - mask) * self.generate(state, z)
