"""egm.cpu.lax_conv.conv: lax's convolution with a plain-convolution input gradient has
the value and the first and second derivatives of `lax.conv_general_dilated`."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from egm.cpu import lax_conv


def reference(x, kernel, strides, padding):
  return lax.conv_general_dilated(x, kernel, strides, padding,
                                  dimension_numbers=lax_conv.DIMENSION_NUMBERS)


@pytest.mark.parametrize('kernel_size,strides,padding', [
    ((3, 3), (1, 1), ((1, 1), (1, 1))),
    ((3, 3), (1, 1), ((0, 0), (0, 0))),
    ((3, 2), (1, 1), ((2, 0), (1, 2))),
    ((4, 4), (2, 2), ((1, 1), (1, 1))),
])
def test_value_gradients_and_second_derivatives_match_lax(kernel_size, strides, padding):
  x = jax.random.normal(jax.random.key(0), (3, 9, 8, 4), jnp.float64)
  kernel = jax.random.normal(jax.random.key(1), (*kernel_size, 4, 5), jnp.float64)
  with jax.enable_x64():
    x, kernel = jnp.asarray(x, jnp.float64), jnp.asarray(kernel, jnp.float64)
    loss = lambda f: (lambda x, k: jnp.sum(jnp.sin(f(x, k, strides, padding)) ** 2))
    ours, theirs = loss(lax_conv.conv), loss(reference)
    np.testing.assert_allclose(lax_conv.conv(x, kernel, strides, padding),
                               reference(x, kernel, strides, padding), rtol=1e-12, atol=1e-12)
    for a, b in zip(jax.grad(ours, argnums=(0, 1))(x, kernel),
                    jax.grad(theirs, argnums=(0, 1))(x, kernel)):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    # the squared input gradient differentiated w.r.t. the kernel: a second-order path
    second = lambda f: jax.grad(lambda k: jnp.sum(jax.grad(f)(x, k) ** 2))(kernel)
    np.testing.assert_allclose(second(ours), second(theirs), rtol=1e-9, atol=1e-9)


def test_a_langevin_chain_compiles_its_input_gradients_to_plain_convolutions():
  """Inside a chain (scan, kernels loop-invariant) XLA keeps JAX's input-gradient convs with
  the kernel's I/O swapped in their dimension labels (`01oi`, XLA:CPU's slow loop); with
  `lax_conv.conv` none is left."""
  k1 = jax.random.normal(jax.random.key(1), (3, 3, 8, 16))
  k2 = jax.random.normal(jax.random.key(2), (3, 3, 16, 1))
  same = ((1, 1), (1, 1))

  def compiled(conv):
    def energy(x):
      return jnp.sum(conv(jnp.tanh(conv(x, k1, (1, 1), same)), k2, (1, 1), same))

    def chain(x):
      return lax.scan(lambda x, _: (x - 0.01 * jax.grad(energy)(x), None), x, None, length=5)[0]

    return jax.jit(chain).lower(jnp.ones((4, 12, 12, 8))).compile().as_text()

  ours, theirs = compiled(lax_conv.conv), compiled(reference)
  convolutions = [line for line in ours.splitlines() if ' convolution(' in line]
  assert '01oi' in theirs
  assert len(convolutions) >= 3 and all('01io->' in line for line in convolutions)
