"""egm.cpu.fast_convolutions: a user's plain flax ConvNets give nn.Conv's parameters, outputs
and gradients with the fast path on, the eligible layers leave lax's convolution, and every
layer the fast path does not cover runs nn.Conv's own call (bitwise the same result)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egm.cpu import conv_impl, fast_convolutions, onednn_build
from egm.errors import EgmError
from egm.nets.conv import Conv
from egm.sampling import langevin


class PlainNet(nn.Module):
  """A user's ConvNet energy, (B,8,8,3) -> (B,), in plain flax.linen: `layers` are nn.Conv
  keyword sets, each followed by LeakyReLU 0.2, then a mean over the last map."""
  layers: tuple

  @nn.compact
  def __call__(self, x):
    for kwargs in self.layers:
      x = nn.leaky_relu(nn.Conv(**dict(kwargs))(x), 0.2)
    return jnp.mean(x.reshape(x.shape[0], -1), axis=1)


def net(*layers):
  return PlainNet(tuple(tuple(sorted(layer.items())) for layer in layers))


NETS = {
    'same_bias_strided_pads_no_bias_valid': net(
        dict(features=6, kernel_size=(3, 3)),
        dict(features=8, kernel_size=(4, 4), strides=2, padding=1, use_bias=False),
        dict(features=1, kernel_size=(4, 4), padding='VALID')),
    'strided_same_odd_pads_rectangular': net(
        dict(features=5, kernel_size=(3, 3), strides=(2, 2)),
        dict(features=4, kernel_size=(3, 2), padding=((0, 1), (1, 0))),
        dict(features=3, kernel_size=(1, 1), padding='VALID', use_bias=False)),
}
# Layers the fast path does not cover: each must run nn.Conv's own call.
FALLBACKS = {
    'kernel_dilation': dict(features=4, kernel_size=(3, 3), kernel_dilation=2),
    'input_dilation': dict(features=4, kernel_size=(3, 3), input_dilation=2, padding=1),
    'feature_groups': dict(features=6, kernel_size=(3, 3), feature_group_count=3),
    'circular': dict(features=4, kernel_size=(3, 3), padding='CIRCULAR'),
    'reflect': dict(features=4, kernel_size=(3, 3), padding='REFLECT'),
    'mask': dict(features=4, kernel_size=(3, 3), mask=jnp.tril(jnp.ones((3, 3, 3, 4)))),
    'precision': dict(features=4, kernel_size=(3, 3), precision='highest'),
    'bfloat16': dict(features=4, kernel_size=(3, 3), dtype=jnp.bfloat16),
    'empty_output': dict(features=4, kernel_size=(9, 9), padding='VALID'),
}
X = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))


@pytest.fixture
def without_onednn(monkeypatch):
  """A CPU run where oneDNN could not be built: 'auto' picks by XLA's size rules."""
  monkeypatch.setattr(onednn_build, 'available', lambda: False)


def random_params(model, x):
  """Parameters of `model` for input `x`, N(0, 0.3^2) entries (biases too, so a bias the fast
  path dropped would show)."""
  rng = np.random.default_rng(0)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  return jax.tree.map(lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype), shapes)


def uses_lax_conv(fn, *args) -> bool:
  """Whether `fn` traces a lax convolution: lax's own, or egm's 'lax' backend."""
  jaxpr = str(jax.make_jaxpr(fn)(*args))
  return 'conv_general_dilated' in jaxpr or 'backend=lax' in jaxpr


def outputs_and_gradients(model):
  """(params, x) -> (model's output, d/d(params, x) of sum(sin(output)))."""
  def fn(params, x):
    grads = jax.grad(lambda p, x: jnp.sum(jnp.sin(model.apply(p, x))), argnums=(0, 1))(params, x)
    return model.apply(params, x), grads
  return fn


@pytest.mark.parametrize('name', NETS)
def test_plain_convnets_match_with_and_without_the_fast_path_inside_jit(name):
  model = NETS[name]
  params = random_params(model, X)
  fast = fast_convolutions('matmul')
  assert uses_lax_conv(model.apply, params, X)
  assert not uses_lax_conv(fast(model.apply), params, X)
  plain_out, plain_grads = jax.jit(outputs_and_gradients(model))(params, X)
  fast_out, fast_grads = jax.jit(fast(outputs_and_gradients(model)))(params, X)
  np.testing.assert_allclose(fast_out, plain_out, rtol=1e-5, atol=1e-6)
  assert jax.tree.structure(fast_grads) == jax.tree.structure(plain_grads)
  for a, b in zip(jax.tree.leaves(fast_grads), jax.tree.leaves(plain_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_init_under_the_fast_path_gives_nn_convs_parameters():
  model = net(dict(features=6, kernel_size=(3, 3), bias_init=nn.initializers.normal(0.1)),
              dict(features=4, kernel_size=(4, 4), strides=2, padding=1, use_bias=False))
  init = lambda x: model.init(jax.random.key(3), x)
  plain, fast = jax.jit(init)(X), jax.jit(fast_convolutions('matmul')(init))(X)
  assert jax.tree.structure(fast) == jax.tree.structure(plain)
  for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain)):
    np.testing.assert_array_equal(a, b)
  assert float(jnp.std(plain['params']['Conv_0']['bias'])) > 0.01  # bias_init was used


def test_langevin_chain_and_its_parameter_gradient_match():
  model = NETS['same_bias_strided_pads_no_bias_valid']
  params = random_params(model, X)

  def loss(params, use_fast_path):
    energy = lambda x: model.apply(params, x)
    if use_fast_path:
      energy = fast_convolutions('matmul')(energy)
    x, _ = langevin(energy, X, jax.random.key(4), n_steps=4, step_size=1.0, noise_scale=0.01)
    return jnp.mean(jnp.square(x)), x

  assert not uses_lax_conv(lambda p: loss(p, True), params)
  run = jax.jit(jax.grad(loss, has_aux=True), static_argnums=1)
  (g_plain, x_plain), (g_fast, x_fast) = run(params, False), run(params, True)
  assert float(jnp.max(jnp.abs(x_plain - X))) > 1e-3  # the chain moved
  np.testing.assert_allclose(x_fast, x_plain, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_plain)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('name', FALLBACKS)
def test_layers_the_fast_path_lacks_run_nn_convs_own_call(name):
  model = net(FALLBACKS[name])
  params = random_params(model, X)
  with fast_convolutions('matmul'):
    fast = jax.jit(model.apply)(params, X)
    assert uses_lax_conv(model.apply, params, X)
  np.testing.assert_array_equal(fast, jax.jit(model.apply)(params, X))


def test_one_and_three_dimensional_convs_and_egm_modules_are_left_alone():
  conv1d, conv3d = nn.Conv(4, (3,)), nn.Conv(4, (3, 3, 3))
  x1, x3 = jnp.ones((2, 8, 3)), jnp.ones((2, 4, 4, 4, 3))
  egm_lax = Conv(4, (3, 3))
  with fast_convolutions('matmul'), conv_impl('lax'):
    for module, x in ((conv1d, x1), (conv3d, x3), (egm_lax, X)):
      params = random_params(module, x)
      assert uses_lax_conv(module.apply, params, x)


def test_auto_keeps_narrow_or_small_convs_on_lax_and_takes_big_ones_off_it_on_cpu(without_onednn):
  """conv.resolve's rule without oneDNN: >= 16 output channels and >= 25 MFLOP forward go to
  the GEMM."""
  narrow, wide = nn.Conv(8, (3, 3)), nn.Conv(64, (3, 3))
  big = jax.random.normal(jax.random.key(6), (8, 32, 32, 8))  # 75 MFLOP at 64 channels
  with fast_convolutions():
    for module, x, expect_lax in ((narrow, big, True), (wide, X, True),
                                  (wide, big, jax.default_backend() != 'cpu')):
      assert uses_lax_conv(module.apply, random_params(module, x), x) == expect_lax


def test_extra_batch_axes_are_flattened_like_nn_conv():
  module = nn.Conv(4, (3, 3), strides=2)
  x = jax.random.normal(jax.random.key(5), (2, 3, 8, 8, 3))
  params = random_params(module, x)
  with fast_convolutions('matmul'):
    fast = module.apply(params, x)
    assert not uses_lax_conv(module.apply, params, x)
  assert fast.shape == (2, 3, 4, 4, 4)
  np.testing.assert_allclose(fast, module.apply(params, x), rtol=1e-5, atol=1e-5)


def test_unknown_impl_is_an_egm_error_naming_the_choices():
  with pytest.raises(EgmError, match=r"impl must be one of \('auto', 'matmul'\)"):
    with fast_convolutions('winograd'):
      pass


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason='lax_conv is the CPU lax path')
def test_a_layer_kept_on_lax_runs_egms_lax_conv_with_the_same_outputs_and_gradients(
    without_onednn):
  narrow = nn.Conv(8, (3, 3))
  params = random_params(narrow, X)
  plain = outputs_and_gradients(narrow)(params, X)
  with fast_convolutions():
    jaxpr = str(jax.make_jaxpr(outputs_and_gradients(narrow))(params, X))
    fast = outputs_and_gradients(narrow)(params, X)
  assert 'egm_conv_forward' in jaxpr and 'backend=lax' in jaxpr
  for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
