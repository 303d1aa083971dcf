"""Plain VAE with the triangle's generator and encoder: the baseline every hybrid must beat."""
import jax
import jax.numpy as jnp
import ml_collections

from egm.methods import base, optim
from egm.methods.contract import register
from egm.methods.watch import Watch, spread_ratio
from egm.nets import make_networks


@register('vae')
class VAE(base.LatentGenerator, base.JointLossMethod):
  """Loss per example: ‖mask·(x − G(z))‖²/(2σ²) + KL(q(z|x) ‖ N(0, I)), z ~ q(z|x), the
  negative ELBO of x = G(z) + N(0, σ²) on the observed pixels (mask 1 = observed; the
  encoder sees [x·mask, mask], see `LatentGenerator.encoder_input`); with
  `vae.loss_form='reference_code'` the reconstruction and KL of the triangle's reference code
  (`base.reconstruction_and_kl`). A triangle config sets `vae.loss_form` to its triangle's,
  so its VAE baseline differs from the triangle by the energy and the cross terms alone."""
  watch = Watch(
      grad_norms=('grad_norm_generator', 'grad_norm_encoder'), spread='reconstruction_spread',
      knobs={'non_finite': ('vae.optim.generator.lr', 'vae.optim.encoder.lr', 'model.sigma'),
             'grad_norm': ('vae.optim.generator.lr', 'vae.optim.encoder.lr', 'optim.grad_clip'),
             'collapse': ('model.sigma', 'vae.optim.encoder.lr')})

  def setup(self):
    base.check_loss_form(self.hp.loss_form, 'vae.loss_form')
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
