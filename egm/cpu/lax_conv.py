"""lax's convolution whose stride-1 input gradient is a plain forward convolution (XLA:CPU).

Differentiating a convolution, JAX writes the input gradient as a convolution with the kernel
transposed in its dimension numbers (`01oi`); XLA:CPU runs those on its generic convolution
loop, several times slower than the `01io` form it hands to YNNPACK (benchmarks/OPTIONS.md).
`conv` here has the same values and derivatives of every order in both modes (it is the 'lax'
backend of `conv_primitive`), but for stride 1 its input gradient is the forward convolution
of the cotangent with the flipped, transposed kernel materialised (an optimization barrier
keeps XLA from folding the transpose back). Other strides keep JAX's own input gradient; the
kernel gradient is JAX's in every case.
"""
import jax.numpy as jnp
from jax import lax

from egm.cpu import conv_primitive
from egm.cpu.conv_primitive import DIMENSION_NUMBERS  # noqa: F401  (re-exported)

BACKEND = 'lax'


def _forward(x, kernel, shape, strides, padding):
  del shape
  return conv_primitive.lax_forward(x, kernel, strides, padding)


def _input_grad(dy, kernel, x_shape, strides, padding):
  if tuple(strides) != (1, 1):
    return conv_primitive.lax_input_grad(dy, kernel, x_shape, strides, padding)
  kh, kw = kernel.shape[:2]
  flipped = lax.optimization_barrier(jnp.flip(kernel, (0, 1)).swapaxes(2, 3))
  pads = ((kh - 1 - padding[0][0], kh - 1 - padding[0][1]),
          (kw - 1 - padding[1][0], kw - 1 - padding[1][1]))
  return conv_primitive.lax_forward(dy, flipped, (1, 1), pads)


conv_primitive.register_backend(BACKEND, conv_primitive.Backend(
    _forward, _input_grad, conv_primitive.lax_kernel_grad))


def conv(x, kernel, strides: tuple, padding: tuple):
  """(B,H,W,C) conv (kh,kw,C,F) -> (B,Ho,Wo,F); `strides` (sh, sw), `padding` ((lo, hi), (lo, hi))
  in pixels, both tuples."""
  return conv_primitive.forward(x, kernel, strides, padding, BACKEND)
