"""Alternating back-propagation: the objective's gradient, inference against a closed-form
posterior, persistent per-example latents (sharded, resumed), incomplete data, bad input."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import abp_fashion, triangle_toy2d
from egm.errors import EgmError
from egm.methods import DataSpec, make_method
from egm.methods.abp import ABP
from egm.nets import Networks
from egm.run import parallel, trainer


def _method(config, shape, rows=64, batch=16):
  return make_method(config, DataSpec.of(shape, num_examples=rows, global_batch=batch))


def _image_method(**abp):
  config = abp_fashion.get_config('smoke')
  config.abp.update(abp)
  return _method(config, (28, 28, 1))


def _batch(n=16, seed=0):
  rng = np.random.default_rng(seed)
  return {'x': jnp.asarray(rng.uniform(-1, 1, (n, 28, 28, 1)), jnp.float32),
          'index': jnp.arange(n, dtype=jnp.int32) * 3}


def test_generator_gradient_is_that_of_the_complete_data_likelihood_at_the_inferred_z():
  method = _image_method(n_steps=4)
  method.opt = optax.sgd(1.0)  # the parameter change is then minus the gradient
  batch, key = _batch(), jax.random.key(5)
  state = method.init(jax.random.key(0), batch)
  state['generator']['opt_state'] = method.opt.init(state['generator']['params'])
  new_state, _ = jax.jit(method.update)(state, batch, key)
  got = jax.tree.map(lambda a, b: a - b, state['generator']['params'],
                     new_state['generator']['params'])
  # Independently: the same chain (same keys, warm start), then ∇θ of −log p(x, z) at that z.
  _, k_chain = jax.random.split(key)
  infer = jax.jit(method.run_inference, static_argnums=4)
  z, _ = infer(state, batch['x'], state['per_example']['z'][batch['index']], k_chain, 4,
               method.hp.step_size)
  assert 'batch_stats' not in state['generator']  # no BatchNorm in a chain's generator

  def neg_log_joint(params):
    x_gen = method.nets.generator.apply({'params': params}, z)
    sq = jnp.sum(jnp.square(batch['x'] - x_gen).reshape(len(z), -1), -1)
    return jnp.mean(sq / (2 * 0.3 ** 2) + 0.5 * jnp.sum(jnp.square(z), -1))

  want = jax.jit(jax.grad(neg_log_joint))(state['generator']['params'])
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6 * float(jnp.max(jnp.abs(b))))
  written = new_state['per_example']['z']
  np.testing.assert_allclose(written[batch['index']], z, rtol=1e-5, atol=1e-6)
  untouched = np.setdiff1d(np.arange(len(written)), np.asarray(batch['index']))
  np.testing.assert_array_equal(written[untouched], state['per_example']['z'][untouched])


def _linear_abp(sigma=0.5, **abp):
  """ABP on 4-D points whose generator is x = W z + b with known W, b (z 2-D)."""
  config = triangle_toy2d.get_config('smoke')
  config.method, config.model.z_dim, config.model.sigma = 'abp', 2, sigma
  config.abp.update(abp)
  method = _method(config, (4,))
  method.nets = Networks({'generator': nn.Dense(4)}, (2,))
  state = method.init(jax.random.key(0), {'x': jnp.zeros((2, 4))})
  w = jnp.array([[1.0, 0.5, -0.3, 0.0], [0.2, -1.0, 0.4, 0.8]])
  b = jnp.array([0.1, -0.2, 0.3, 0.0])
  state['generator']['params'] = {'kernel': w, 'bias': b}
  x = jnp.array([0.7, -0.4, 0.2, 0.5])
  precision = jnp.eye(2) + w @ w.T / sigma ** 2  # kernel is (z, x): x = z @ W + b
  cov = jnp.linalg.inv(precision)
  mean = cov @ (w @ (x - b)) / sigma ** 2
  return method, state, x, mean, cov


def test_langevin_inference_reaches_the_closed_form_posterior_of_a_linear_gaussian_model():
  method, state, x, mean, cov = _linear_abp(test_steps=400, test_step_size=0.1)
  n = 20_000
  z = method.infer(state, jnp.broadcast_to(x, (n, 4)), jax.random.key(1))
  np.testing.assert_allclose(np.mean(z, 0), mean, atol=0.02)
  np.testing.assert_allclose(np.cov(np.asarray(z).T), cov, atol=0.02, rtol=0.05)
  method, state, x, mean, _ = _linear_abp(test_steps=400, test_step_size=0.1, test_noise=False)
  z = method.infer(state, x[None], jax.random.key(2))  # gradient descent: the posterior mode
  np.testing.assert_allclose(z[0], mean, atol=1e-4)


def test_completion_infers_from_observed_pixels_only():
  method = _image_method()
  batch = _batch(4)
  state = method.init(jax.random.key(0), batch)
  mask = jnp.ones((4, 28, 28, 1)).at[:, 7:21, 7:21].set(0.0)
  changed = batch['x'].at[:, 7:21, 7:21].set(0.9)  # the hidden block differs
  a = method.complete(state, batch['x'], mask, jax.random.key(3))
  b = method.complete(state, changed, mask, jax.random.key(3))
  np.testing.assert_allclose(a[:, 7:21, 7:21], b[:, 7:21, 7:21], atol=1e-5)
  np.testing.assert_array_equal(a * mask, batch['x'] * mask)


def _train_toy(tmp_path, name, num_steps=8, rows=40):
  config = triangle_toy2d.get_config('smoke')
  config.method = 'abp'
  config.data.max_examples = rows
  config.train.batch_size = 8
  config.train.num_steps = num_steps
  return trainer.train(config, str(tmp_path / name))


def test_latents_persist_per_example_on_1_and_8_devices_and_resume(tmp_path, monkeypatch):
  eight = _train_toy(tmp_path, 'eight')
  z = eight['per_example']['z']
  assert z.shape[0] == 40 and len({s.device for s in z.addressable_shards}) == 8
  _train_toy(tmp_path, 'resumed', num_steps=5)
  resumed = _train_toy(tmp_path, 'resumed')
  for a, b in zip(jax.tree.leaves(eight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  monkeypatch.setattr(parallel, 'make_mesh',
                      lambda devices=None, make=parallel.make_mesh: make(jax.devices()[:1]))
  one = _train_toy(tmp_path, 'one')
  for a, b in zip(jax.tree.leaves(eight), jax.tree.leaves(one)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_a_checkpoint_with_other_latent_shapes_or_data_size_is_refused(tmp_path):
  _train_toy(tmp_path, 'run', num_steps=3)
  with pytest.raises(EgmError, match=r"checkpoints of a run with another config.*"
                                     r"data.max_examples: run 40, now 48"):
    _train_toy(tmp_path, 'run', num_steps=6, rows=48)


@pytest.mark.parametrize('key,value,match', [
    ('abp.step_size', -0.1, 'abp.step_size is -0.1'),
    ('abp.n_steps', 0, 'abp.n_steps is 0'),
    ('abp.test_step_size', 0.0, 'abp.test_step_size is 0.0'),
    ('model.sigma', -0.3, 'model.sigma is -0.3'),
])
def test_bad_settings_name_the_key(key, value, match):
  config = abp_fashion.get_config('smoke')
  section, leaf = key.split('.')
  config[section][leaf] = value
  with pytest.raises(EgmError, match=match):
    _method(config, (28, 28, 1))


def test_abp_declares_what_it_implements():
  assert ABP.capabilities == {'infer', 'generate', 'reconstruct', 'complete'}
