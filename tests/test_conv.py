"""egm.nets.conv.Conv (through egm.cpu.conv2d): both implementations equal nn.Conv in outputs, gradients and parameters."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egm.cpu import conv_impl
from egm.cpu import convolution as conv
from egm.errors import EgmError
from egm.nets.conv import Conv

resolve = conv.resolve

# (input side, cin, cout, kernel, strides, padding): the convolutions of egm's networks.
CASES = [
    (8, 3, 5, (3, 3), (1, 1), 'SAME'),
    (7, 4, 6, (3, 3), (1, 1), 'SAME'),
    (14, 2, 3, (3, 3), (1, 1), 'SAME'),
    (8, 3, 4, (4, 4), (2, 2), ((1, 1), (1, 1))),
    (14, 3, 4, (4, 4), (2, 2), ((1, 1), (1, 1))),
    (4, 6, 1, (4, 4), (1, 1), 'VALID'),
    (7, 6, 2, (7, 7), (1, 1), 'VALID'),
]


@pytest.mark.parametrize('impl,side,cin,cout,kernel,strides,padding',
                         [('matmul', *case) for case in CASES] + [('lax', *CASES[3])])
def test_conv_matches_flax_conv(impl, side, cin, cout, kernel, strides, padding):
  x = jax.random.normal(jax.random.key(0), (2, side, side, cin))
  ours = Conv(cout, kernel, strides, padding)
  reference = nn.Conv(cout, kernel, strides, padding)
  params = reference.init(jax.random.key(1), x)
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
  ours_params = ours.init(jax.random.key(1), x)
  assert jax.tree.map(jnp.shape, ours_params) == jax.tree.map(jnp.shape, params)
  with conv_impl(impl):
    np.testing.assert_allclose(ours.apply(params, x), reference.apply(params, x), rtol=1e-5,
                               atol=1e-5)

  def loss(module):
    return lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))

  with conv_impl(impl):
    ours_grads = jax.grad(loss(ours), argnums=(0, 1))(params, x)
  reference_grads = jax.grad(loss(reference), argnums=(0, 1))(params, x)
  for a, b in zip(jax.tree.leaves(ours_grads), jax.tree.leaves(reference_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv_without_bias_has_only_a_kernel():
  x = jnp.ones((1, 4, 4, 2))
  params = Conv(3, (3, 3), use_bias=False).init(jax.random.key(0), x)
  assert set(params['params']) == {'kernel'}


def test_auto_picks_matmul_on_cpu_for_wide_convs_and_unknown_names_fail(monkeypatch):
  """The rules where oneDNN is not available (tests/test_onednn_conv.py: where it is)."""
  monkeypatch.setattr(conv.onednn_build, 'available', lambda: False)
  on_cpu = jax.default_backend() == 'cpu'
  assert resolve('auto') == ('matmul' if on_cpu else 'lax')
  assert resolve('auto', features=64) == ('matmul' if on_cpu else 'lax')
  assert resolve('auto', features=16, flops=1e9) == ('matmul' if on_cpu else 'lax')
  assert resolve('auto', features=64, flops=1e6) == 'lax'
  wide_gemm = 'matmul' if on_cpu else 'lax'
  # stride 1, narrow, patches past the cache: lax; small patches, wide or strided: the GEMM
  assert resolve('auto', 32, flops=1e9, stride_one=True, patch_bytes=64 * 2 ** 20) == 'lax'
  assert resolve('auto', 32, flops=1e9, stride_one=True, patch_bytes=2 ** 20) == wide_gemm
  assert resolve('auto', 64, flops=1e9, stride_one=True, patch_bytes=64 * 2 ** 20) == wide_gemm
  assert resolve('auto', 32, flops=1e9, stride_one=False, patch_bytes=64 * 2 ** 20) == wide_gemm
  assert resolve('auto', features=8) == 'lax'
  assert resolve('auto', features=1, whole_map=True) == ('matmul' if on_cpu else 'lax')
  assert resolve('lax') == 'lax'
  with pytest.raises(EgmError, match='conv_impl'):
    resolve('winograd')


def test_implementation_counts_the_forward_flops_of_one_conv(monkeypatch):
  """2·B·Ho·Wo·kh·kw·C·F decides 'auto': (4, 28, 28, 16) -> 16 channels, 3x3 'SAME' is
  2·4·784·9·16·16 = 14.45 MFLOP; 4x4 stride 2 with 1-pixel pads gives 14x14 outputs."""
  monkeypatch.setattr(conv, 'MIN_MATMUL_FEATURES', 16)
  monkeypatch.setattr(jax, 'default_backend', lambda: 'cpu')
  monkeypatch.setattr(conv.onednn_build, 'available', lambda: False)
  same = ((1, 1), (1, 1))
  for threshold, expected in ((14.4e6, 'matmul'), (14.5e6, 'lax')):
    monkeypatch.setattr(conv, 'MIN_MATMUL_FLOPS', threshold)
    assert conv.implementation('auto', 16, (4, 28, 28, 16), (3, 3), (1, 1), same) == expected
  monkeypatch.setattr(conv, 'MIN_MATMUL_FLOPS', 2 * 4 * 196 * 16 * 16 * 16)
  assert conv.implementation('auto', 16, (4, 28, 28, 16), (4, 4), (2, 2), same) == 'matmul'
  monkeypatch.setattr(conv, 'MIN_MATMUL_FLOPS', 2 * 4 * 196 * 16 * 16 * 16 + 1)
  assert conv.implementation('auto', 16, (4, 28, 28, 16), (4, 4), (2, 2), same) == 'lax'
  # patches of the 3x3 conv: 4·784·144 floats = 1,806,336 bytes
  monkeypatch.setattr(conv, 'MIN_MATMUL_FLOPS', 0)
  for cache, expected in ((1_806_336, 'matmul'), (1_806_335, 'lax')):
    monkeypatch.setattr(conv, 'PATCH_CACHE_BYTES', cache)
    assert conv.implementation('auto', 16, (4, 28, 28, 16), (3, 3), (1, 1), same) == expected
