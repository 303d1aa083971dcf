"""VAE: the loss is the negative ELBO (closed form for a linear-Gaussian model), and the
hidden pixels of incomplete data change nothing."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import triangle_digits
from egm.methods import DataSpec, make_method
from egm.nets import Networks
from egm.sampling import delta_steps, latent_posterior_energy, posterior_langevin

B = 8


def _vae(shape=(8, 8, 1), sigma=None):
  config = triangle_digits.get_config('smoke')
  config.method = 'vae'
  if sigma is not None:
    config.model.sigma = sigma
  return make_method(config, DataSpec.of(shape, global_batch=B))


def _images_and_mask(shape, seed=0):
  kx, km = jax.random.split(jax.random.key(seed))
  x = jax.random.uniform(kx, (B,) + shape, minval=-1, maxval=1)
  mask = (jax.random.uniform(km, (B,) + shape[:2] + (1,)) > 0.4).astype(jnp.float32)
  return x, mask


def test_hidden_pixels_change_nothing():
  """With a mask, the loss, both gradients, the new batch statistics and the reconstruction
  are the same whatever the hidden pixels of x hold."""
  method = _vae()
  x, mask = _images_and_mask((8, 8, 1))
  other = mask * x + (1 - mask) * jax.random.uniform(jax.random.key(9), x.shape, minval=-1,
                                                     maxval=1)
  state = method.init(jax.random.key(1), {'x': x})
  assert state['encoder']['params']['Conv_0']['kernel'].shape[2] == 2
  params = {name: state[name]['params'] for name in method.opt}
  grad = jax.jit(jax.value_and_grad(method.loss, has_aux=True))
  key = jax.random.key(2)
  out_a = grad(params, state, {'x': x, 'mask': mask}, key)
  out_b = grad(params, state, {'x': other, 'mask': mask}, key)
  for a, b in zip(jax.tree.leaves(out_a), jax.tree.leaves(out_b), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  reconstruct = jax.jit(method.reconstruct)
  np.testing.assert_allclose(reconstruct(state, {'x': x, 'mask': mask}, key),
                             reconstruct(state, {'x': other, 'mask': mask}, key), atol=1e-6)


class _LinearGenerator(nn.Module):
  """x = W z + b: (B, z) -> (B, *shape)."""
  shape: tuple

  @nn.compact
  def __call__(self, z, train=True):
    del train
    return nn.Dense(int(np.prod(self.shape)))(z).reshape((z.shape[0],) + self.shape)


class _LinearEncoder(nn.Module):
  """mu = A u + a, logvar = C u + c of the flattened input u."""
  z_dim: int

  @nn.compact
  def __call__(self, u, train=True):
    del train
    u = u.reshape(u.shape[0], -1)
    return nn.Dense(self.z_dim, name='mu')(u), nn.Dense(self.z_dim, name='logvar')(u)


@pytest.mark.parametrize('masked', [False, True])
def test_loss_is_the_linear_gaussian_negative_elbo(masked):
  """x = Wz + b + N(0, σ²), q(z|x) = N(Au + a, exp(Cu + c)) with u = [x·m, m]:
  E_q ‖m·(x − Wz − b)‖²/(2σ²) = (‖m·(x − Wμ − b)‖² + Σ_ij m_i W_ij² s_j²)/(2σ²) and
  KL = ½ Σ_j (μ_j² + s_j² − 1 − log s_j²). The KL is exact per draw; the mean of the
  reconstruction over 20,000 reparameterisation draws is within 5 standard errors."""
  shape, z_dim, sigma = (3, 3, 1), 4, 0.5
  method = _vae(shape, sigma)
  method.nets = Networks({'generator': _LinearGenerator(shape),
                          'encoder': _LinearEncoder(z_dim)}, (z_dim,))
  method.z_dim = z_dim
  x, mask = _images_and_mask(shape)
  batch = {'x': x, 'mask': mask} if masked else {'x': x}
  state = method.init(jax.random.key(1), batch)
  params = {name: state[name]['params'] for name in method.opt}

  m = np.asarray(mask, np.float64) if masked else np.ones((B,) + shape[:2] + (1,))
  xs = np.asarray(x, np.float64)
  u = np.concatenate([xs * m, m], axis=-1).reshape(B, -1)
  enc = jax.tree.map(lambda a: np.asarray(a, np.float64), params['encoder'])
  mu = u @ enc['mu']['kernel'] + enc['mu']['bias']
  logvar = u @ enc['logvar']['kernel'] + enc['logvar']['bias']
  w = np.asarray(params['generator']['Dense_0']['kernel'], np.float64)  # (z, pixels)
  b = np.asarray(params['generator']['Dense_0']['bias'], np.float64)
  m_flat, x_flat = np.broadcast_to(m, xs.shape).reshape(B, -1), xs.reshape(B, -1)
  mean_sq = np.sum(m_flat * (x_flat - mu @ w - b) ** 2, axis=1)
  spread = np.sum(m_flat * (np.exp(logvar) @ w ** 2), axis=1)
  assert np.mean(spread) > 0.2 * np.mean(mean_sq)  # the posterior spread term matters
  rec = np.mean(mean_sq + spread) / (2 * sigma ** 2)
  kl = np.mean(0.5 * np.sum(mu ** 2 + np.exp(logvar) - 1 - logvar, axis=1))

  draws = jax.random.split(jax.random.key(2), 20_000)
  losses, (metrics, _) = jax.jit(jax.vmap(lambda k: method.loss(params, state, batch, k)))(draws)
  np.testing.assert_allclose(metrics['kl'], kl, rtol=1e-5)
  np.testing.assert_allclose(losses, metrics['rec'] + metrics['kl'], rtol=1e-5)
  recs = np.asarray(metrics['rec'], np.float64)
  stderr = np.std(recs) / np.sqrt(len(recs))
  assert stderr < 0.01 * rec
  assert abs(np.mean(recs) - rec) < 5 * stderr, (np.mean(recs), rec, stderr)


def test_completion_by_latent_inference_lowers_the_observed_pixels_energy():
  """'latent_inference' descends U(z) = ‖mask·(x − G(z))‖²/(2σ²) + ‖z‖²/2 from the encoder's
  mean: its fill keeps the observed pixels and ends at a lower U than 'encoder' does."""
  x = jax.random.uniform(jax.random.key(1), (4, 8, 8, 1), minval=-1, maxval=1)
  mask = jnp.ones((4, 8, 8, 1)).at[:, 2:6, 2:6].set(0.0)
  energies = {}
  for mode in ('encoder', 'latent_inference'):
    config = triangle_digits.get_config('smoke')
    config.method, config.vae.completion, config.vae.completion_steps = 'vae', mode, 100
    method = make_method(config, DataSpec.of((8, 8, 1), 64, 16))
    state = method.init(jax.random.key(0), {'x': jnp.zeros((2, 8, 8, 1))})
    filled = jax.jit(method.complete)(state, x, mask, jax.random.key(2))
    assert bool(jnp.all(filled * mask == x * mask))
    u = latent_posterior_energy(lambda z: method.generate(state, z), x, method.sigma, mask)
    # the latent whose decoding the fill holds: the encoder's mean, or its refinement
    z = method.infer(state, mask * x, None, mask)
    if mode == 'latent_inference':
      z, _ = posterior_langevin(lambda z: method.generate(state, z), x, z, jax.random.key(2),
                                sigma=method.sigma, n_steps=100, mask=mask,
                                **delta_steps(0.1, noise=False))
      decoded = mask * x + (1 - mask) * method.generate(state, z)
      assert bool(jnp.allclose(decoded, filled, atol=1e-5))
    energies[mode] = float(jnp.mean(u(z)))
  assert energies['latent_inference'] < 0.9 * energies['encoder']
