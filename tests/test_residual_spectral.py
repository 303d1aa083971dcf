"""Spectral normalisation and residual networks as network builders (egm/nets/residual.py,
layers.normalized): after the power iterations of training the largest singular value of every
normalised kernel is 1 within 2%, evaluation leaves the power iteration alone, and the residual
energy, encoder and generator build for the channel plan of each image size."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from egm.config import defaults
from egm.errors import EgmError
from egm.methods import base
from egm.nets import make_networks


def _model(**settings):
  model = defaults.base_config().model
  model.architecture, model.width = 'resnet', 8
  model.update(settings)
  return model


def _power_step(kernel, u):
  """One step of the power iteration of flax's `nn.SpectralNorm` from `u`: (sigma, u)."""
  matrix = np.reshape(np.asarray(kernel, np.float64), (-1, kernel.shape[-1]))
  v = u @ matrix.T
  v /= np.linalg.norm(v)
  u = v @ matrix
  u /= np.linalg.norm(u)
  return float((v @ matrix @ u.T).squeeze()), u


def _normalised_top_singular_values(params, stats):
  """Per spectrally normalised kernel: the largest singular value of kernel / sigma, sigma
  from one power step from its stored u (what the forward pass divides by)."""
  flat_stats = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(stats):
    flat_stats['/'.join(str(getattr(k, 'key', k)) for k in path)] = np.asarray(leaf, np.float64)
  kernels = {'/'.join(str(getattr(k, 'key', k)) for k in path): leaf
             for path, leaf in jax.tree_util.tree_leaves_with_path(params) if leaf.ndim >= 2}
  values = {}
  for name, u in flat_stats.items():
    if not name.endswith('/u'):
      continue
    scope, layer = name.rsplit('/', 3)[0], name.split('/')[-3]
    owner = '/'.join(p for p in scope.split('/') if not p.startswith('SpectralNorm'))
    kernel = kernels[f'{owner}/{layer}/kernel' if owner else f'{layer}/kernel']
    sigma, _ = _power_step(kernel, u)
    matrix = np.reshape(np.asarray(kernel, np.float64), (-1, kernel.shape[-1]))
    values[name] = np.linalg.svd(matrix, compute_uv=False)[0] / sigma
  return values


@pytest.mark.parametrize('role,architecture', [('energy', 'resnet'), ('energy', 'auto')])
def test_every_normalised_kernel_has_largest_singular_value_one_after_training_steps(
    role, architecture):
  model = _model(architecture=architecture)
  nets = make_networks(model, (16, 16, 3), role, options={role: {'spectral_norm': True}})
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
  net = base.init_network(nets.energy, optax.sgd(0.0), jax.random.key(1), x)
  step = jax.jit(lambda net: base.apply_network(nets.energy, net, x, train=True)[1])
  evaluate = jax.jit(lambda net: base.apply_network(nets.energy, net, x))
  for _ in range(300):
    net = dict(net, batch_stats=step(net))
  values = _normalised_top_singular_values(net['params'], net['batch_stats'])
  assert len(values) >= 4
  for name, value in values.items():
    assert abs(value - 1) < 0.02, (name, value)
  before = jax.tree.map(np.asarray, net['batch_stats'])
  energies = evaluate(net)
  assert energies.shape == (4,)
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(net['batch_stats'])):
    np.testing.assert_array_equal(a, b)  # evaluation does not advance the power iteration


@pytest.mark.parametrize('side,channels', [(8, 1), (28, 1), (32, 3), (64, 3)])
def test_residual_networks_build_for_each_image_size(side, channels):
  nets = make_networks(_model(), (side, side, channels), 'energy', 'generator', 'encoder')
  x = jnp.zeros((2, side, side, channels))
  variables = {role: getattr(nets, role).init(jax.random.key(0), inputs)
               for role, inputs in (('energy', x), ('encoder', x),
                                    ('generator', jnp.zeros((2, 100))))}
  assert nets.energy.apply(variables['energy'], x).shape == (2,)
  assert nets.generator.apply(variables['generator'], jnp.zeros((2, 100)),
                              train=False).shape == (2, side, side, channels)
  mu, logvar = nets.encoder.apply(variables['encoder'], x, train=False)
  assert mu.shape == logvar.shape == (2, 100)


def test_a_channel_plan_of_the_wrong_length_names_the_key():
  with pytest.raises(EgmError, match=r"model.channel_plan is '8,16'.*give 3 positive"):
    make_networks(_model(channel_plan='8,16'), (32, 32, 3), 'energy')
  with pytest.raises(EgmError, match="takes no option batch_norm"):
    make_networks(_model(), (32, 32, 3), 'energy', options={'energy': {'batch_norm': True}})
