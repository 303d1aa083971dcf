"""egm.cpu.onednn_conv: oneDNN's convolution through XLA FFI has the value and the first and
second derivatives of a float64 lax convolution, inside jit, scan and vmap; the build and
the 'auto' rule that picks it."""
import pathlib
import platform
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from egm.cpu import conv_impl, fast_convolutions, onednn_build, onednn_conv
from egm.cpu import convolution as conv
from egm.errors import EgmError
from egm.nets.conv import Conv

# oneDNN's wheels are dependencies on Linux x86-64 (pyproject.toml): there it must build.
SUPPORTED = sys.platform == 'linux' and platform.machine() == 'x86_64'


@pytest.fixture(scope='module', autouse=True)
def built():
  ok, why = onednn_build.status()
  if not ok and not SUPPORTED:
    pytest.skip(f'oneDNN is not a dependency on this platform: {why}')
  assert ok, why


def normal(seed: int, shape, scale: float = 1.0):
  """A float32 standard normal array from numpy (no PRNG kernels to compile)."""
  return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def reference64(x, kernel, strides, padding):
  """The float64 lax convolution of float32 arrays (call under `jax.enable_x64()`)."""
  return lax.conv_general_dilated(jnp.asarray(x, jnp.float64), jnp.asarray(kernel, jnp.float64),
                                  strides, padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


CASES = [
    ((3, 3), (1, 1), ((1, 1), (1, 1)), 4, 5),  # 'SAME'
    ((3, 3), (1, 1), ((0, 0), (0, 0)), 4, 5),  # 'VALID'
    ((3, 2), (1, 1), ((2, 0), (1, 2)), 4, 5),  # uneven kernel and padding
    ((4, 4), (2, 2), ((1, 1), (1, 1)), 4, 5),  # the generators' and encoders' stride-2 convs
    ((3, 3), (2, 2), ((1, 2), (0, 1)), 1, 8),  # one input channel, odd output size
    ((1, 1), (1, 1), ((0, 0), (0, 0)), 6, 1),  # 1x1 to one channel
    ((9, 8), (1, 1), ((0, 0), (0, 0)), 4, 1),  # a kernel covering the whole map
]


@pytest.mark.parametrize('kernel_size,strides,padding,c_in,c_out', CASES)
def test_value_gradients_and_second_derivatives_match_float64_lax(kernel_size, strides, padding,
                                                                  c_in, c_out):
  x = normal(0, (3, 9, 8, c_in))
  kernel = normal(1, (*kernel_size, c_in, c_out), 0.3)

  def value_gradients_and_second(f):
    """f's value, the gradients of a loss through it, and a second-order path (the squared
    input gradient differentiated w.r.t. the kernel), in one jitted call."""
    loss = lambda x, k: jnp.sum(jnp.sin(f(x, k, strides, padding)) ** 2)
    second = jax.grad(lambda k: jnp.sum(jax.grad(loss)(x, k) ** 2))
    return jax.jit(lambda x, k: [f(x, k, strides, padding),
                                 *jax.grad(loss, argnums=(0, 1))(x, k), second(k)])

  ours = value_gradients_and_second(onednn_conv.conv)(x, kernel)
  assert ours[0].dtype == jnp.float32
  with jax.enable_x64():
    x64, kernel64 = jnp.asarray(x, jnp.float64), jnp.asarray(kernel, jnp.float64)
    expected = value_gradients_and_second(reference64)(x64, kernel64)
    for ours_value, theirs_value in zip(ours, expected):
      scale = float(jnp.max(jnp.abs(theirs_value)))
      np.testing.assert_allclose(np.asarray(ours_value, np.float64), theirs_value,
                                 atol=2e-5 * scale, rtol=0)


def test_the_three_handlers_are_adjoint_to_each_other():
  """<conv(x, k), g> = <x, input_grad(g, k)> = <k, kernel_grad(x, g)> in float64 sums."""
  strides, padding = (2, 2), ((1, 1), (1, 1))
  x, kernel, g = normal(2, (2, 10, 10, 3)), normal(3, (4, 4, 3, 6)), normal(4, (2, 5, 5, 6))
  y, dx, dkernel = jax.jit(lambda x, kernel, g: (
      onednn_conv.conv(x, kernel, strides, padding),
      onednn_conv.input_grad(g, kernel, x.shape, strides, padding),
      onednn_conv.kernel_grad(x, g, kernel.shape, strides, padding)))(x, kernel, g)
  dot = lambda a, b: float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))
  forward, via_input, via_kernel = dot(y, g), dot(x, dx), dot(kernel, dkernel)
  assert abs(via_input - forward) < 1e-4 * abs(forward) + 1e-3
  assert abs(via_kernel - forward) < 1e-4 * abs(forward) + 1e-3


def test_a_jitted_langevin_chain_and_vmap_agree_with_lax():
  strides, padding = (1, 1), ((1, 1), (1, 1))
  kernel, x0 = normal(5, (3, 3, 2, 4), 0.3), normal(6, (5, 6, 6, 2))

  def chain(conv_fn):
    energy = lambda x: jnp.sum(jnp.tanh(conv_fn(x, kernel, strides, padding)) ** 2)

    def step(x, _):
      return x - 0.05 * jax.grad(energy)(x), None
    return jax.jit(lambda x: lax.scan(step, x, None, length=8)[0])

  lax_fn = lambda x, k, s, p: lax.conv_general_dilated(
      x, k, s, p, dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision='highest')
  np.testing.assert_allclose(chain(onednn_conv.conv)(x0), chain(lax_fn)(x0), atol=2e-5)
  per_slice = jax.jit(jax.vmap(lambda x: onednn_conv.conv(x, kernel, strides, padding)))(
      x0[:, None])
  np.testing.assert_allclose(per_slice[:, 0], lax_fn(x0, kernel, strides, padding), atol=2e-5)


def test_conv_module_on_onednn_equals_lax_with_the_same_parameters():
  x = normal(7, (2, 8, 8, 3))
  module = Conv(7, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))
  params = module.init(jax.random.key(6), x)
  with conv_impl('onednn'):
    text = jax.jit(lambda p: module.apply(p, x)).lower(params).as_text()
    fast = jax.jit(module.apply)(params, x)
  assert conv.onednn_conv.FORWARD in text and 'stablehlo.convolution' not in text
  with conv_impl('lax'):
    np.testing.assert_allclose(fast, jax.jit(module.apply)(params, x), atol=1e-5)


def test_auto_takes_float32_convs_to_onednn_on_cpu_on_one_device_or_a_mesh(monkeypatch):
  shape, kernel_size, strides, pads = (4, 8, 8, 3), (3, 3), (1, 1), ((1, 1), (1, 1))
  pick = lambda dtype=jnp.float32: conv.implementation('auto', 8, shape, kernel_size, strides,
                                                       pads, dtype)
  for devices in (1, 8):
    monkeypatch.setattr(jax, 'device_count', lambda devices=devices: devices)
    assert pick() == 'onednn'
  assert pick(jnp.bfloat16) == 'lax'  # float32 only; the small conv stays on lax by the rule
  monkeypatch.setattr(conv.onednn_build, 'available', lambda: False)
  assert pick() == 'lax'  # no build: XLA's convolution by the size rule
  with pytest.raises(EgmError, match="float32 convolutions only.*'auto'"):
    conv.implementation('onednn', 8, shape, kernel_size, strides, pads, jnp.bfloat16)


def test_onednn_requested_where_it_cannot_be_built_names_the_fix(monkeypatch):
  monkeypatch.setattr(conv.onednn_build, 'status', lambda: (False, 'no compiler'))
  monkeypatch.setattr(jax, 'device_count', lambda: 1)
  with pytest.raises(EgmError, match=r"conv_impl\('onednn'\).*no compiler.*'auto'"):
    conv.resolve('onednn')
  assert conv.implementation('auto', 8, (4, 8, 8, 3), (3, 3), (1, 1), ((1, 1), (1, 1))) == 'lax'
  with pytest.raises(EgmError, match='not available here: no compiler'):
    onednn_conv.conv(jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 1)), (1, 1), ((1, 1), (1, 1)))
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  with pytest.raises(EgmError, match=r"CPU only, not on gpu; use conv_impl\('auto'\)"):
    conv.resolve('onednn')


def test_the_build_is_cached_and_a_failing_compiler_is_reported(monkeypatch, tmp_path, capsys):
  library = onednn_build._find_in_distributions(onednn_build.RUNTIME_DISTRIBUTIONS, 'libdnnl.so')
  header = onednn_build._find_in_distributions(onednn_build.HEADER_DISTRIBUTIONS,
                                               'oneapi/dnnl/dnnl.hpp')
  monkeypatch.setenv('EGM_NATIVE_CACHE', str(tmp_path))
  monkeypatch.setenv('CXX', 'false')
  with pytest.raises(RuntimeError, match='compiling onednn_conv.cc failed'):
    onednn_build._build(library.parent, header.parents[2])
  assert 'compiling its oneDNN convolution' in capsys.readouterr().err  # said while it builds
  # nothing half-built left behind: only the lock that made concurrent builds wait
  assert [f.suffix for f in tmp_path.iterdir()] == ['.lock']
  cached = tmp_path / pathlib.Path(onednn_build.status()[1]).name
  cached.write_bytes(b'built before')  # a library already in the cache is not rebuilt
  assert onednn_build._build(library.parent, header.parents[2]) == cached


def test_a_plain_flax_conv_under_fast_convolutions_runs_onednn(monkeypatch):
  monkeypatch.setattr(jax, 'device_count', lambda: 1)
  layer = nn.Conv(16, (3, 3))
  x = normal(8, (4, 12, 12, 8))
  params = layer.init(jax.random.key(8), x)
  with fast_convolutions():
    fast = jax.jit(lambda p: layer.apply(p, x))
    text = fast.lower(params).as_text()
    fast_y = fast(params)
  assert conv.onednn_conv.FORWARD in text
  np.testing.assert_allclose(fast_y, jax.jit(layer.apply)(params, x), atol=1e-5)


def test_a_failed_build_falls_back_with_one_warning_that_names_the_fix(monkeypatch, tmp_path,
                                                                       caplog):
  monkeypatch.setenv('EGM_NATIVE_CACHE', str(tmp_path))
  monkeypatch.setenv('CXX', 'false')
  ok, why = onednn_build.status.__wrapped__()  # the uncached check, as on a first call
  assert not ok and 'compiling onednn_conv.cc failed' in why and 'set $CXX' in why
  warnings = [r for r in caplog.records if r.levelname == 'WARNING']
  assert len(warnings) == 1 and "XLA's convolution runs instead" in warnings[0].getMessage()
