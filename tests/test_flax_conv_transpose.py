"""egm.cpu.fast_convolutions on `flax.linen.ConvTranspose`: where 'auto' takes convolutions
to oneDNN, a plain transposed convolution runs as oneDNN's input gradient with the outputs,
parameters and first and second derivatives of nn.ConvTranspose's own call; the layers it
does not cover run that call."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egm.cpu import conv_transpose, fast_convolutions, onednn_build, onednn_conv
from egm.sampling import langevin


@pytest.fixture(autouse=True, params=[1, 8], ids=['one_device', 'eight_devices'])
def devices(request, monkeypatch):
  """'auto' takes float32 convolutions to oneDNN on a CPU run, of one device or a mesh."""
  ok, why = onednn_build.status()
  if not ok:
    pytest.skip(f'oneDNN is not available here: {why}')
  if jax.device_count() < request.param:
    pytest.skip(f'needs {request.param} devices')
  monkeypatch.setattr(jax, 'device_count', lambda: request.param)


def normal(seed: int, shape, scale: float = 1.0):
  return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def random_params(model, x):
  """Parameters of `model` for `x`, N(0, 0.3^2) entries (biases too)."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  rng = np.random.default_rng(1)
  return jax.tree.map(lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype), shapes)


def lowered(fn, *args) -> str:
  return jax.jit(fn).lower(*args).as_text()


LAYERS = {
    'dcgan_4x4_stride2_same': dict(kernel_size=(4, 4), strides=(2, 2), padding='SAME'),
    'explicit_uneven_pads': dict(kernel_size=(4, 4), strides=(2, 2), padding=((2, 1), (1, 2))),
    'valid_transpose_kernel': dict(kernel_size=(3, 3), strides=(2, 2), padding='VALID',
                                   transpose_kernel=True),
    'stride1_same_no_bias': dict(kernel_size=(3, 3), padding='SAME', use_bias=False,
                                 transpose_kernel=True),
    'rectangular_stride_equal_kernel': dict(kernel_size=(3, 2), strides=(3, 2), padding='SAME'),
}
X = normal(0, (3, 5, 6, 4))


@pytest.mark.parametrize('name', LAYERS)
def test_transposed_convs_match_nn_conv_transpose_with_their_gradients(name):
  layer = nn.ConvTranspose(features=5, **LAYERS[name])
  params = random_params(layer, X)

  def outputs_and_gradients(params, x):
    loss = lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x)))
    return layer.apply(params, x), jax.grad(loss, argnums=(0, 1))(params, x)

  fast = fast_convolutions()(outputs_and_gradients)
  text = lowered(fast, params, X)
  assert onednn_conv.INPUT_GRAD in text and 'convolution' not in text.replace('onednn_conv', '')
  plain_out, plain_grads = jax.jit(outputs_and_gradients)(params, X)
  fast_out, fast_grads = jax.jit(fast)(params, X)
  assert fast_out.shape == plain_out.shape
  np.testing.assert_allclose(fast_out, plain_out, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(fast_grads), jax.tree.leaves(plain_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_init_under_the_fast_path_gives_nn_conv_transposes_parameters():
  for transpose_kernel in (False, True):
    layer = nn.ConvTranspose(6, (4, 4), (2, 2), transpose_kernel=transpose_kernel,
                             bias_init=nn.initializers.normal(0.1))
    init = lambda x: layer.init(jax.random.key(3), x)
    plain, fast = jax.jit(init)(X), jax.jit(fast_convolutions()(init))(X)
    assert jax.tree.structure(fast) == jax.tree.structure(plain)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain)):
      np.testing.assert_array_equal(a, b)


class Generator(nn.Module):
  """A user's DCGAN-style generator, z (B, 8) -> (B, 8, 8, 1)."""

  @nn.compact
  def __call__(self, z):
    h = nn.relu(nn.Dense(2 * 2 * 6)(z)).reshape(z.shape[0], 2, 2, 6)
    h = nn.relu(nn.ConvTranspose(4, (4, 4), (2, 2), padding='SAME')(h))
    return jnp.tanh(nn.ConvTranspose(1, (4, 4), (2, 2), padding=((2, 2), (2, 2)))(h))


def test_posterior_langevin_through_a_generator_and_its_parameter_gradient_match():
  """Second derivatives: the chain's steps differentiate the generator, and the loss
  differentiates the chain."""
  model = Generator()
  z0 = normal(2, (3, 8))
  params = random_params(model, z0)
  target = normal(3, (3, 8, 8, 1), 0.5)

  def loss(params, use_fast_path):
    energy = lambda z: (0.5 * jnp.sum(jnp.square(model.apply(params, z) - target), (1, 2, 3))
                        + 0.5 * jnp.sum(jnp.square(z), 1))
    if use_fast_path:
      energy = fast_convolutions()(energy)
    z, _ = langevin(energy, z0, jax.random.key(4), n_steps=3, step_size=0.05, noise_scale=0.01)
    return jnp.mean(jnp.square(model.apply(params, z))), z

  assert onednn_conv.INPUT_GRAD in lowered(lambda p: loss(p, True), params)
  run = jax.jit(jax.grad(loss, has_aux=True), static_argnums=1)
  (g_plain, z_plain), (g_fast, z_fast) = run(params, False), run(params, True)
  assert float(jnp.max(jnp.abs(z_plain - z0))) > 1e-3  # the chain moved
  np.testing.assert_allclose(z_fast, z_plain, rtol=1e-4, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_plain)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


FALLBACKS = {
    'stride_above_kernel': dict(kernel_size=(1, 1), strides=(2, 2), padding='SAME'),
    'kernel_dilation': dict(kernel_size=(3, 3), kernel_dilation=(2, 2)),
    'circular': dict(kernel_size=(3, 3), strides=(2, 2), padding='CIRCULAR'),
    'bfloat16': dict(kernel_size=(3, 3), dtype=jnp.bfloat16),
    'one_dimensional': dict(kernel_size=(3,)),
}


@pytest.mark.parametrize('name', FALLBACKS)
def test_layers_the_fast_path_lacks_run_their_own_call(name):
  layer = nn.ConvTranspose(features=3, **FALLBACKS[name])
  x = X[:, :, 0] if name == 'one_dimensional' else X
  params = random_params(layer, x)
  fast = fast_convolutions()(layer.apply)
  assert onednn_conv.INPUT_GRAD not in lowered(fast, params, x)
  np.testing.assert_array_equal(jax.jit(fast)(params, x), jax.jit(layer.apply)(params, x))


def test_matmul_impl_and_a_run_without_onednn_keep_lax(monkeypatch):
  layer = nn.ConvTranspose(3, (4, 4), (2, 2))
  params = random_params(layer, X)
  assert onednn_conv.INPUT_GRAD not in lowered(fast_convolutions('matmul')(layer.apply), params, X)
  monkeypatch.setattr(onednn_build, 'available', lambda: False)
  assert onednn_conv.INPUT_GRAD not in lowered(fast_convolutions()(layer.apply), params, X)


def test_explicit_pads_follow_lax_conv_transposes_reading():
  """Against lax.conv_transpose itself, with pads that only one reading makes valid."""
  x, kernel = normal(5, (2, 4, 4, 3)), normal(6, (3, 3, 3, 2))
  pads = ((2, 0), (1, 2))
  forward, out_size = conv_transpose.plan(pads, (3, 3), (2, 2), (4, 4))
  fast = conv_transpose.conv_transpose(x, kernel, (2, 2), forward, out_size, False)
  np.testing.assert_allclose(fast, jax.lax.conv_transpose(x, kernel, (2, 2), pads,
                                                          dimension_numbers=('NHWC', 'HWIO',
                                                                             'NHWC')),
                             rtol=1e-5, atol=1e-5)
