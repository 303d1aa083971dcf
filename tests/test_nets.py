"""Network shapes for every data family, the reference EBM layout, and the upsampling claim."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from egm.cpu import conv_impl
from egm.errors import EgmError
from egm.nets import layers, make_networks, registry


ROLES = ('energy', 'generator', 'encoder')


def _model(width=8, z_dim=4, energy_dtype='float32'):
  return ml_collections.ConfigDict(dict(width=width, z_dim=z_dim, mlp_depth=2,
                                        energy_reference_std=0.0, architecture='auto',
                                        energy_dtype=energy_dtype))


@pytest.mark.parametrize('x_shape', [(2,), (8, 8, 1), (28, 28, 1), (32, 32, 3), (64, 64, 3)])
def test_shapes(x_shape):
  nets = make_networks(_model(), x_shape, *ROLES)
  assert nets.z_shape == (4,)
  x = jnp.zeros((3,) + x_shape)
  z = jnp.zeros((3, 4))
  key = jax.random.key(0)
  energy = nets.energy.apply(nets.energy.init(key, x), x)
  gen_vars = nets.generator.init(key, z)
  x_gen = nets.generator.apply(gen_vars, z, train=False)
  mu, logvar = nets.encoder.apply(nets.encoder.init(key, x), x, train=False)
  assert energy.shape == (3,)
  assert x_gen.shape == x.shape
  assert mu.shape == logvar.shape == (3, 4)
  if len(x_shape) == 3:
    assert float(jnp.max(jnp.abs(x_gen))) <= 1.0  # tanh output, images live in [-1, 1]


def test_cifar_energy_is_the_reference_convnet():
  """32 px, width 64: conv3x3 64 -> conv4x4/2 128 -> 256 -> 512 -> conv4x4 (valid) 1."""
  nets = make_networks(_model(width=64), (32, 32, 3), 'energy')
  params = nets.energy.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))['params']
  kernels = [leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(params)
             if path[-1].key == 'kernel']
  assert kernels == [(3, 3, 3, 64), (4, 4, 64, 128), (4, 4, 128, 256), (4, 4, 256, 512),
                     (4, 4, 512, 1)]


def test_bfloat16_energy_keeps_float32_chains_and_tracks_the_float32_energy():
  """bf16 compute: same parameters, float32 energies and input gradients within bf16 error."""
  x = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3), minval=-1, maxval=1)
  full = make_networks(_model(width=16), (32, 32, 3), 'energy').energy
  half = make_networks(_model(width=16, energy_dtype='bfloat16'), (32, 32, 3),
                       'energy').energy
  params = full.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, half.init(jax.random.key(0), x))
  e_full, g_full = jax.value_and_grad(lambda y: full.apply(params, y).sum())(x)
  e_half, g_half = jax.value_and_grad(lambda y: half.apply(params, y).sum())(x)
  assert e_half.dtype == g_half.dtype == jnp.float32
  np.testing.assert_allclose(e_half, e_full, rtol=0.05, atol=0.05 * float(jnp.abs(e_full)))
  cosine = jnp.vdot(g_full, g_half) / (jnp.linalg.norm(g_full) * jnp.linalg.norm(g_half))
  assert 0.99 < float(cosine) < 1.0  # close, and really computed in lower precision
  with pytest.raises(EgmError, match='energy_dtype is .float16.; it must be float32 or bfloat16'):
    make_networks(_model(energy_dtype='float16'), (32, 32, 3), 'energy')


def test_image_stages():
  assert [layers.image_stages(s) for s in (64, 32, 28, 16, 8)] == [
      (4, 4), (3, 4), (2, 7), (2, 4), (1, 4)]


def test_upsample_spans_the_transposed_convolution():
  """Any 4x4 stride-2 transposed conv is an Upsample2x: least squares fits it exactly."""
  c_in, c_out = 3, 2
  x = jax.random.normal(jax.random.key(0), (64, 5, 5, c_in))
  conv_t = nn.ConvTranspose(c_out, (4, 4), strides=(2, 2), padding='SAME', use_bias=False)
  target = conv_t.apply(conv_t.init(jax.random.key(1), x), x)
  # Upsample2x is linear in its kernel: regress the target on its 3x3 input patches.
  patches = jax.lax.conv_general_dilated_patches(
      x, (3, 3), (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  phases = target.reshape(64, 5, 2, 5, 2, c_out).transpose(0, 1, 3, 2, 4, 5)
  a = np.asarray(patches, np.float64).reshape(-1, 9 * c_in)
  b = np.asarray(phases, np.float64).reshape(-1, 4 * c_out)
  solution, *_ = np.linalg.lstsq(a, b, rcond=None)
  assert np.max(np.abs(a @ solution - b)) < 1e-4 * np.max(np.abs(b))


def test_networks_are_built_by_registered_name_and_a_duplicate_name_is_refused():
  from egm.nets import NETWORKS, build_network, register_network
  assert {'mlp_energy', 'conv_energy', 'conv_generator', 'conv_encoder', 'texture_energy',
          'texture_generator'} <= set(NETWORKS)
  assert type(build_network('conv_energy', _model(), (8, 8, 1))).__name__ == 'ConvEnergy'
  with pytest.raises(EgmError, match="Duplicate network name 'conv_energy'.*conv_energy"):
    register_network('conv_energy')(lambda model, x_shape: None)
  assert type(build_network('conv_energy', _model(), (8, 8, 1))).__name__ == 'ConvEnergy'
  with pytest.raises(EgmError, match='no encoder'):
    make_networks(ml_collections.ConfigDict({**_model().to_dict(), 'architecture': 'texture',
                                             'texture_energy_stages': 2}), (8, 8, 1), 'encoder')


def _conv_ops_and_kernels(module, *args, **kwargs):
  """(convolutions in the lowered forward, 4-D kernels among the parameters)."""
  variables = module.init(jax.random.key(0), *args, **kwargs)
  forward = jax.jit(lambda v: module.apply(v, *args, mutable=['batch_stats'], **kwargs))
  ops = forward.lower(variables).as_text().count('stablehlo.convolution')
  kernels = sum(leaf.ndim == 4 for leaf in jax.tree.leaves(variables['params']))
  return ops, kernels


@pytest.mark.parametrize('name', ['conv_energy', 'conv_generator', 'conv_encoder',
                                  'texture_energy', 'texture_generator',
                                  'conv_hierarchical_generator'])
def test_the_conv_impl_switch_reaches_every_convolution_of_the_image_networks(name):
  """'lax' traces one lax conv per 4-D kernel; 'matmul' none (patches and GEMMs)."""
  x_shape = (16, 16, 1)
  for impl in ('lax', 'matmul'):
    model = _model()
    model.update(texture_energy_stages=2, latent_dims='4,4')
    module = registry.build_network(name, model, x_shape)
    latent_shape = registry.NETWORKS[name].latent_shape
    arg_shape = latent_shape(model, x_shape) if latent_shape else x_shape
    with conv_impl(impl):
      ops, kernels = _conv_ops_and_kernels(module, jnp.zeros((2, *arg_shape)))
    assert kernels > 0
    assert ops == (kernels if impl == 'lax' else 0), impl


def test_an_unknown_conv_impl_is_refused_by_name():
  with pytest.raises(EgmError, match='winograd.*egm.cpu.conv_impl'):
    with conv_impl('winograd'):
      pass
