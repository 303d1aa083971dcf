"""`lax.conv_general_dilated` (NHWC, HWIO) whose input gradient is a plain forward convolution.

Differentiating a convolution, JAX writes the input gradient as a convolution with the kernel
transposed in its dimension numbers (`01oi`); XLA:CPU runs those on its generic convolution
loop, several times slower than the `01io` form it hands to YNNPACK (benchmarks/OPTIONS.md).
`conv` here has the same value and derivatives of every order, but for stride 1 its input
gradient is `conv` itself on the cotangent with the flipped, transposed kernel materialised
(an optimization barrier keeps XLA from folding the transpose back). Other strides keep
JAX's own input gradient; the kernel gradient is JAX's in every case. As a `jax.custom_vjp`
function it has no forward-mode derivative (`jax.jvp`, `jax.jacfwd` raise).
"""
import functools

import jax
import jax.numpy as jnp
from jax import lax

DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')


def _forward(x, kernel, strides, padding):
  return lax.conv_general_dilated(x, kernel, strides, padding,
                                  dimension_numbers=DIMENSION_NUMBERS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(x, kernel, strides: tuple, padding: tuple):
  """(B,H,W,C) conv (kh,kw,C,F) -> (B,Ho,Wo,F); `strides` (sh, sw), `padding` ((lo, hi), (lo, hi))
  in pixels, both tuples."""
  return _forward(x, kernel, strides, padding)


def _conv_fwd(x, kernel, strides, padding):
  return _forward(x, kernel, strides, padding), (x, kernel)


def _conv_bwd(strides, padding, residuals, cotangent):
  x, kernel = residuals
  if tuple(strides) == (1, 1):
    (kh, kw) = kernel.shape[:2]
    flipped = lax.optimization_barrier(jnp.flip(kernel, (0, 1)).swapaxes(2, 3))
    pads = ((kh - 1 - padding[0][0], kh - 1 - padding[0][1]),
            (kw - 1 - padding[1][0], kw - 1 - padding[1][1]))
    dx = conv(cotangent, flipped, (1, 1), pads)
  else:
    dx = jax.vjp(lambda v: _forward(v, kernel, strides, padding), x)[1](cotangent)[0]
  dkernel = jax.vjp(lambda k: _forward(x, k, strides, padding), kernel)[1](cotangent)[0]
  return dx, dkernel


conv.defvjp(_conv_fwd, _conv_bwd)
