"""Divergence triangle: the joint scalar's gradients are each network's own loss, the loss
forms against hand-computed values, separate generator passes, and incomplete data."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import triangle_cifar, triangle_digits, triangle_toy2d
from egm.errors import EgmError
from egm.methods import DataSpec, base, make_method
from egm.nets import Networks

B = 8


def _method(config):
  shape = (2,) if config.data.source.startswith('toy2d') else (8, 8, 1)
  return make_method(config, DataSpec.of(shape, global_batch=B))


def _digits(loss_form='gaussian'):
  config = triangle_digits.get_config('smoke')
  config.triangle.loss_form = loss_form
  return config


def _images_and_mask(seed=0):
  kx, km = jax.random.split(jax.random.key(seed))
  x = jax.random.uniform(kx, (B, 8, 8, 1), minval=-1, maxval=1)
  mask = (jax.random.uniform(km, (B, 8, 8, 1)) > 0.4).astype(jnp.float32)
  return x, mask


def _params(method, state):
  return {name: state[name]['params'] for name in method.opt}


def _assert_trees_close(a, b, rtol=2e-4):
  """Leaf by leaf, to rtol of the largest entry of each leaf."""
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    u, v = np.asarray(u), np.asarray(v)
    np.testing.assert_allclose(u, v, rtol=rtol, atol=rtol * max(np.max(np.abs(v)), 1e-6))


def _own_losses(method, state, batch, key):
  """Each network's own loss as a function of its parameters alone, written out term by
  term with one generator pass per latent draw (the z of `Triangle.loss` for `key`)."""
  hp, x, mask = method.hp, batch['x'], batch.get('mask')
  b, observed = x.shape[0], 1.0 if mask is None else mask
  k_prior, k_post = jax.random.split(key)
  z = jax.random.normal(k_prior, (b, method.z_dim))
  eps = jax.random.normal(k_post, (b, method.z_dim))
  rec_weight = 1.0 if hp.loss_form == 'reference_code' else 1.0 / (2 * method.sigma ** 2)
  kl_weight = 1.0 / method.z_dim if hp.loss_form == 'reference_code' else 1.0

  def run(name, params, *inputs):
    return base.apply_network(getattr(method.nets, name), dict(state[name], params=params),
                              *inputs, train=True)[0]

  def terms(p):
    mu, logvar = run('encoder', p['encoder'], method.encoder_input(x, mask))
    x_rec = run('generator', p['generator'], mu + jnp.exp(0.5 * logvar) * eps)
    x_gen = run('generator', p['generator'], z)
    mu_g, logvar_g = run('encoder', p['encoder'], method.encoder_input(x_gen))
    sq = observed * (x - x_rec) ** 2
    rec = rec_weight * jnp.mean(jnp.sum(sq.reshape(b, -1), axis=1))
    kl = kl_weight * jnp.mean(0.5 * jnp.sum(mu ** 2 + jnp.exp(logvar) - 1 - logvar, axis=1))
    nlq = jnp.mean(0.5 * jnp.sum((z - mu_g) ** 2 * jnp.exp(-logvar_g) + logvar_g
                                 + math.log(2 * math.pi), axis=1))
    e_data = run('energy', p['energy'], observed * x + (1 - observed) * x_rec)
    e_gen = run('energy', p['energy'], x_gen)
    l2 = jnp.mean(jnp.concatenate([e_data, e_gen]) ** 2)
    return rec, kl, nlq, e_data, e_gen, l2

  def own(name, loss):
    def f(p, params):
      return loss(*terms(dict(params, **{name: p})))
    return f

  return {
      'energy': own('energy', lambda rec, kl, nlq, e_data, e_gen, l2:
                    jnp.mean(e_data) - jnp.mean(e_gen) + hp.energy_l2 * l2),
      'generator': own('generator', lambda rec, kl, nlq, e_data, e_gen, l2:
                       rec + hp.energy_weight * jnp.mean(e_gen) + hp.entropy_weight * nlq),
      'encoder': own('encoder', lambda rec, kl, nlq, e_data, e_gen, l2:
                     rec + kl + hp.entropy_weight * nlq),
  }


@pytest.mark.parametrize('case', ['toy2d', 'digits_masked', 'digits_reference_code'])
def test_joint_gradient_is_each_networks_own_loss(case):
  """∂(joint scalar)/∂θ_net equals ∂(net's own loss)/∂θ_net for E, G and I (same z)."""
  if case == 'toy2d':
    config = triangle_toy2d.get_config('smoke')
    x, mask = jax.random.normal(jax.random.key(0), (B, 2)), None
  else:
    config = _digits('reference_code' if case == 'digits_reference_code' else 'gaussian')
    x, mask = _images_and_mask()
    mask = mask if case == 'digits_masked' else None
  method = _method(config)
  batch = {'x': x} if mask is None else {'x': x, 'mask': mask}
  state = method.init(jax.random.key(1), batch)
  params, key = _params(method, state), jax.random.key(2)
  joint = jax.jit(jax.grad(lambda p: method.loss(p, state, batch, key)[0]))(params)
  for name, loss in _own_losses(method, state, batch, key).items():
    own = jax.jit(jax.grad(loss))(params[name], params)
    _assert_trees_close(joint[name], own, rtol=3e-5)


def test_reconstruction_gradient_does_not_depend_on_the_prior_draws():
  """G runs once on z_inf and once on z_prior: BatchNorm does not mix the two batches."""
  method = _method(_digits())
  x, _ = _images_and_mask()
  state = method.init(jax.random.key(1), {'x': x})
  rec_grad = jax.jit(jax.grad(lambda p, z: method.loss(p, state, {'x': x}, jax.random.key(2),
                                                       z_prior=z)[1][0]['rec']))
  z_a = jax.random.normal(jax.random.key(3), (B, method.z_dim))
  a = rec_grad(_params(method, state), z_a)
  b = rec_grad(_params(method, state), 3.0 * z_a + 1.0)
  _assert_trees_close(a, b, rtol=1e-6)


def test_running_statistics_take_the_prior_pass_then_the_reconstruction_pass():
  method = _method(_digits())
  x, _ = _images_and_mask()
  state = method.init(jax.random.key(1), {'x': x})
  z = jax.random.normal(jax.random.key(3), (B, method.z_dim))
  _, (_, stats) = method.loss(_params(method, state), state, {'x': x}, jax.random.key(2),
                              z_prior=z)
  (mu, logvar), _ = base.apply_network(method.nets.encoder, state['encoder'],
                                       method.encoder_input(x), train=True)
  z_inf = base.reparameterize(jax.random.split(jax.random.key(2))[1], mu, logvar)
  _, after_prior = base.apply_network(method.nets.generator, state['generator'], z, train=True)
  _, expected = base.apply_network(method.nets.generator,
                                   dict(state['generator'], batch_stats=after_prior), z_inf,
                                   train=True)
  _assert_trees_close(stats['generator'], expected, rtol=1e-6)


class _Constant(nn.Module):
  """Ignores its input's values: (B, ...) -> a learned constant per example, broadcast."""
  shape: tuple

  @nn.compact
  def __call__(self, inputs, train=True):
    del train
    value = self.param('value', nn.initializers.zeros, self.shape)
    return jnp.broadcast_to(value, (inputs.shape[0],) + self.shape)


class _ConstantEncoder(nn.Module):
  z_dim: int

  @nn.compact
  def __call__(self, x, train=True):
    return _Constant((self.z_dim,), name='mu')(x), _Constant((self.z_dim,), name='logvar')(x)


class _LinearEnergy(nn.Module):
  @nn.compact
  def __call__(self, x, train=True):
    del train
    return x @ self.param('c', nn.initializers.zeros, (x.shape[-1],))


@pytest.mark.parametrize('loss_form,rec,kl', [
    # rec: per-example sums of squares 4 and 2, mean 3, over 2σ² = 0.5 (gaussian) or 1.
    # kl: per-dimension KLs 0.5·(1 + 1 − 1 − 0) = 0.5 and 0.5·(4 + 2 − 1 − ln 2), summed
    #     (gaussian) or averaged over the 2 dimensions (reference_code).
    ('gaussian', 6.0, 0.5 + 0.5 * (5 - math.log(2))),
    ('reference_code', 3.0, (0.5 + 0.5 * (5 - math.log(2))) / 2),
])
def test_loss_forms_on_hand_computed_values(loss_form, rec, kl):
  config = triangle_toy2d.get_config('smoke')
  config.model.z_dim = 2
  config.model.sigma = 0.5
  config.triangle.loss_form = loss_form
  method = _method(config)
  method.nets = Networks({'energy': _LinearEnergy(), 'generator': _Constant((2,)),
                          'encoder': _ConstantEncoder(2)}, (2,))
  x = jnp.array([[1.0, 2.0], [0.0, -1.0]])
  state = method.init(jax.random.key(0), {'x': x})
  params = {'energy': {'c': jnp.array([2.0, 1.0])},
            'generator': {'value': jnp.array([1.0, 0.0])},
            'encoder': {'mu': {'value': jnp.array([1.0, -2.0])},
                        'logvar': {'value': jnp.array([0.0, math.log(2.0)])}}}
  z_prior = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  total, (metrics, _) = method.loss(params, state, {'x': x}, jax.random.key(1), z_prior=z_prior)
  # −log q(z|G(z)) with q = N((1, −2), diag(1, 2)): squared distances 0 + 4/2 and 1 + 9/2,
  # the same in both forms (the constant 0.5·log 2π per dimension included).
  neg_log_q = 0.5 * (3.75 + math.log(2.0) + 2 * math.log(2 * math.pi))
  # E(x) = 2·x1 + x2: data energies 4 and −1, E(G(z)) = 2 for both samples.
  e_data, e_gen = 1.5, 2.0
  e_square = (16 + 1 + 4 + 4) / 4
  hp = method.hp
  expected = (rec + kl + hp.entropy_weight * neg_log_q + hp.energy_weight * e_gen
              + e_data - e_gen + hp.energy_l2 * e_square)
  for name, value in (('rec', rec), ('kl', kl), ('neg_log_q', neg_log_q),
                      ('contrastive', e_data - e_gen), ('loss', expected)):
    np.testing.assert_allclose(float(metrics[name]), value, rtol=1e-6, err_msg=name)
  np.testing.assert_allclose(float(total), expected, rtol=1e-6)


def test_cifar_reference_settings_use_the_reference_code_loss_form():
  assert triangle_cifar.get_config().triangle.loss_form == 'reference_code'
  assert triangle_digits.get_config().triangle.loss_form == 'gaussian'


def test_unknown_loss_form_is_refused():
  config = triangle_toy2d.get_config('smoke')
  config.triangle.loss_form = 'mse'
  with pytest.raises(EgmError, match=r"loss_form is 'mse'.*gaussian.*reference_code"):
    _method(config)


@pytest.mark.parametrize('loss_form', ['gaussian', 'reference_code'])
def test_hidden_pixels_change_nothing(loss_form):
  """With a mask, the loss, every network's gradient, the new batch statistics and the
  reconstruction are the same whatever the hidden pixels of x hold."""
  method = _method(_digits(loss_form))
  x, mask = _images_and_mask()
  other = mask * x + (1 - mask) * jax.random.uniform(jax.random.key(9), x.shape, minval=-1,
                                                     maxval=1)
  state = method.init(jax.random.key(1), {'x': x})
  grad = jax.jit(jax.value_and_grad(method.loss, has_aux=True))
  key = jax.random.key(2)
  out_a = grad(_params(method, state), state, {'x': x, 'mask': mask}, key)
  out_b = grad(_params(method, state), state, {'x': other, 'mask': mask}, key)
  _assert_trees_close(out_a, out_b, rtol=1e-6)
  reconstruct = jax.jit(method.reconstruct)
  np.testing.assert_allclose(reconstruct(state, {'x': x, 'mask': mask}, key),
                             reconstruct(state, {'x': other, 'mask': mask}, key), atol=1e-6)


def test_encoder_takes_the_image_and_its_mask():
  """Images: the encoder sees [x·m, m] (C + 1 channels); no mask means m = 1 everywhere."""
  method = _method(_digits())
  x, mask = _images_and_mask()
  state = method.init(jax.random.key(1), {'x': x})
  assert state['encoder']['params']['Conv_0']['kernel'].shape[2] == 2
  np.testing.assert_array_equal(method.encoder_input(x, mask),
                                jnp.concatenate([x * mask, mask], axis=-1))
  np.testing.assert_allclose(method.infer(state, x, None),
                             method.infer(state, x, None, jnp.ones_like(mask)))
  points = _method(triangle_toy2d.get_config('smoke'))
  y = jnp.ones((B, 2))
  np.testing.assert_array_equal(points.encoder_input(y), y)


def test_the_sequential_update_steps_each_network_on_its_own_loss_after_the_previous_ones():
  """SGD(1): E moves by −∇ of mean E(x) − mean E(G(z)) at the old networks; I by −∇ of its
  loss with the old G; G by −∇ of its loss with the new E and the new I."""
  import optax
  config = _digits()
  config.triangle.update_order = 'sequential'
  method = _method(config)
  method.opt = {name: optax.sgd(1.0) for name in method.opt}
  x, _ = _images_and_mask(3)
  state = method.init(jax.random.key(0), {'x': x})
  for name in method.opt:
    state[name]['opt_state'] = method.opt[name].init(state[name]['params'])
  key = jax.random.key(7)
  new, metrics = jax.jit(method.update)(state, {'x': x}, key)
  hp = method.hp
  k_prior, k_post_i, k_post_g = jax.random.split(key, 3)
  z = jax.random.normal(k_prior, (B, method.z_dim))

  def run(name, params, *inputs, net_state=state, train=True):
    out = base.apply_network(getattr(method.nets, name), dict(net_state[name], params=params),
                             *inputs, train=train)
    return out[0] if train else out

  def sample(key, mu, logvar):
    return mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)

  p = _params(method, state)
  x_gen = run('generator', p['generator'], z)
  e_loss = lambda pe: (jnp.mean(run('energy', pe, x, train=False))
                       - jnp.mean(run('energy', pe, x_gen, train=False)))
  want_e = jax.tree.map(lambda a, g: a - g, p['energy'], jax.grad(e_loss)(p['energy']))

  def i_loss(pi):
    mu, logvar = run('encoder', pi, method.encoder_input(x))
    x_rec = run('generator', p['generator'], sample(k_post_i, mu, logvar))
    mu_g, logvar_g = run('encoder', pi, method.encoder_input(x_gen))
    rec, kl = method.reconstruction_and_kl(x, x_rec, mu, logvar)
    return (jnp.mean(rec) + jnp.mean(kl)
            + hp.entropy_weight * jnp.mean(base.gaussian_neg_log_density(z, mu_g, logvar_g)))
  want_i = jax.tree.map(lambda a, g: a - g, p['encoder'], jax.grad(i_loss)(p['encoder']))

  mu, logvar = run('encoder', new['encoder']['params'], method.encoder_input(x), net_state=new)
  z_inf = sample(k_post_g, mu, logvar)

  def g_loss(pg):
    x_rec, x_fake = run('generator', pg, z_inf), run('generator', pg, z)
    rec, _ = method.reconstruction_and_kl(x, x_rec, mu, logvar)
    mu_g, logvar_g = run('encoder', new['encoder']['params'], method.encoder_input(x_fake),
                         net_state=new)
    e_fake = run('energy', want_e, x_fake, train=False)
    return (jnp.mean(rec) + hp.energy_weight * jnp.mean(e_fake)
            + hp.entropy_weight * jnp.mean(base.gaussian_neg_log_density(z, mu_g, logvar_g)))
  want_g = jax.tree.map(lambda a, g: a - g, p['generator'], jax.grad(g_loss)(p['generator']))

  _assert_trees_close(new['energy']['params'], want_e)
  _assert_trees_close(new['encoder']['params'], want_i)
  _assert_trees_close(new['generator']['params'], want_g)
  assert np.isfinite(float(metrics['loss']))


def test_the_vae_baseline_of_a_triangle_config_has_the_triangles_loss_form_and_settings():
  config = triangle_cifar.get_config()
  assert config.vae.loss_form == config.triangle.loss_form == 'reference_code'
  for name in ('generator', 'encoder'):
    assert config.vae.optim[name].to_dict() == config.triangle.optim[name].to_dict()
  config = triangle_toy2d.get_config()
  for name in ('generator', 'encoder'):
    assert config.vae.optim[name].lr == config.triangle.optim[name].lr


def test_the_reference_networks_have_the_reference_parameter_counts():
  """model.architecture=dcgan at 32 px, width 64, z 100: the parameters of enijkamp/triangle's
  _netG, _netE and _netI (the encoder here takes one more input channel, the mask, and has
  no BatchNorm as there)."""
  from egm.config import defaults
  from egm.nets import make_networks
  model = defaults.base_config().model
  model.architecture = 'dcgan'
  nets = make_networks(model, (32, 32, 3), 'energy', 'generator', 'encoder')
  count = lambda module, x: sum(v.size for v in jax.tree.leaves(
      module.init(jax.random.key(0), x)['params']))
  bn = 2 * (512 + 512 + 256 + 128)  # the generator's BatchNorm scales and biases
  want_g = 100 * 512 * 16 + 512 * 512 * 16 + 512 * 256 * 16 + 256 * 128 * 16 + 128 * 3 * 9 + 3
  assert count(nets.generator, jnp.zeros((2, 100))) == want_g + bn
  assert count(nets.energy, jnp.zeros((2, 32, 32, 3))) == (
      3 * 64 * 9 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 256 * 16 + 256 * 16 + 1)
  want_i = 4 * 64 * 9 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + 512 * 200 * 16 + 200
  assert count(nets.encoder, jnp.zeros((2, 32, 32, 4))) == want_i
