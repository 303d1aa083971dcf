"""2-D convolution on oneDNN (XLA:CPU, float32), differentiable in reverse mode to any order.

`conv(x, kernel, strides, padding)` calls the forward handler of native/onednn_conv.cc (the
direct convolution PyTorch runs on CPU, channels-last), and its derivatives are the other two
handlers: the input gradient (backward data) and the kernel gradient (backward weights). The
three are linear in each argument and each one's derivatives are the other two, so
`input_grad` and `kernel_grad` are `jax.custom_vjp` functions too and second derivatives
(a Langevin chain's gradient, an energy's gradient penalty) stay on oneDNN. No forward mode
(`jax.jvp`). Under `jax.vmap` the calls run one slice at a time. On several devices each call
is split along the batch (`onednn_sharding`). The first call builds and
registers the handlers (`onednn_build.status()`); where they cannot be built it raises
`EgmError` with the reason and the fix.
"""
import functools

import jax
import numpy as np

from egm.errors import EgmError
from egm.nets import onednn_build, onednn_sharding

FORWARD, INPUT_GRAD, KERNEL_GRAD = (onednn_sharding.FORWARD, onednn_sharding.INPUT_GRAD,
                                    onednn_sharding.KERNEL_GRAD)


def _attributes(strides, padding) -> dict:
  (sh, sw), ((top, bottom), (left, right)) = strides, padding
  return {name: np.int64(value) for name, value in (
      ('stride_h', sh), ('stride_w', sw), ('pad_top', top), ('pad_bottom', bottom),
      ('pad_left', left), ('pad_right', right))}


def output_shape(x_shape, kernel_shape, strides, padding) -> tuple:
  """(B,Ho,Wo,F) of a (B,H,W,C) input, (kh,kw,C,F) kernel, strides and ((lo, hi), (lo, hi))."""
  b, h, w, _ = x_shape
  kh, kw, _, features = kernel_shape
  (sh, sw), ((top, bottom), (left, right)) = strides, padding
  return (b, (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1, features)


def _call(target: str, shape, a, b, strides, padding):
  ok, why = onednn_build.status()
  if not ok:
    raise EgmError(f"egm's oneDNN convolution is not available here: {why}")
  return onednn_sharding.call(target, shape, a, b, _attributes(strides, padding))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(x, kernel, strides: tuple, padding: tuple):
  """(B,H,W,C) float32 conv (kh,kw,C,F) -> (B,Ho,Wo,F); `strides` (sh, sw), `padding`
  ((top, bottom), (left, right)) in pixels."""
  return _call(FORWARD, output_shape(x.shape, kernel.shape, strides, padding), x, kernel,
               strides, padding)


def _conv_fwd(x, kernel, strides, padding):
  return conv(x, kernel, strides, padding), (x, kernel)


def _conv_bwd(strides, padding, residuals, cotangent):
  x, kernel = residuals
  return (input_grad(cotangent, kernel, x.shape, strides, padding),
          kernel_grad(x, cotangent, kernel.shape, strides, padding))


conv.defvjp(_conv_fwd, _conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def input_grad(cotangent, kernel, x_shape: tuple, strides: tuple, padding: tuple):
  """The vjp of `conv` w.r.t. x: (B,Ho,Wo,F) cotangent, (kh,kw,C,F) kernel -> (B,H,W,C)."""
  return _call(INPUT_GRAD, x_shape, cotangent, kernel, strides, padding)


def _input_grad_fwd(cotangent, kernel, x_shape, strides, padding):
  return input_grad(cotangent, kernel, x_shape, strides, padding), (cotangent, kernel)


def _input_grad_bwd(x_shape, strides, padding, residuals, g):
  cotangent, kernel = residuals
  return (conv(g, kernel, strides, padding),
          kernel_grad(g, cotangent, kernel.shape, strides, padding))


input_grad.defvjp(_input_grad_fwd, _input_grad_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def kernel_grad(x, cotangent, kernel_shape: tuple, strides: tuple, padding: tuple):
  """The vjp of `conv` w.r.t. the kernel: (B,H,W,C) x, (B,Ho,Wo,F) cotangent -> (kh,kw,C,F)."""
  return _call(KERNEL_GRAD, kernel_shape, x, cotangent, strides, padding)


def _kernel_grad_fwd(x, cotangent, kernel_shape, strides, padding):
  return kernel_grad(x, cotangent, kernel_shape, strides, padding), (x, cotangent)


def _kernel_grad_bwd(kernel_shape, strides, padding, residuals, g):
  x, cotangent = residuals
  return (input_grad(cotangent, g, x.shape, strides, padding),
          conv(x, g, strides, padding))


kernel_grad.defvjp(_kernel_grad_fwd, _kernel_grad_bwd)
