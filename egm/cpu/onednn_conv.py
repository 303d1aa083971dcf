"""2-D convolution on oneDNN (XLA:CPU, float32), differentiable to any order in both modes.

`conv(x, kernel, strides, padding)` calls the forward handler of native/onednn_conv.cc (the
direct convolution PyTorch runs on CPU, channels-last); its derivatives are the other two
handlers, the input gradient (backward data) and the kernel gradient (backward weights). The
three are the 'onednn' backend of `conv_primitive`, whose rules make `jax.grad`, `jax.jvp`,
Hessian-vector products and `jax.vmap` work (a Langevin chain's gradient, an energy's
gradient penalty stay on oneDNN; a vmap that cannot fold into the batch runs lax's
convolution). On several devices each call is split along the batch (`onednn_sharding`). The
first call builds and registers the handlers (`onednn_build.status()`); where they cannot be
built it raises `EgmError` with the reason and the fix.
"""
import numpy as np

from egm.cpu import conv_primitive, onednn_build, onednn_sharding
from egm.cpu.conv_primitive import output_shape  # noqa: F401  (re-exported)
from egm.errors import EgmError

BACKEND = 'onednn'
FORWARD, INPUT_GRAD, KERNEL_GRAD = (onednn_sharding.FORWARD, onednn_sharding.INPUT_GRAD,
                                    onednn_sharding.KERNEL_GRAD)


def _attributes(strides, padding) -> dict:
  (sh, sw), ((top, bottom), (left, right)) = strides, padding
  return {name: np.int64(value) for name, value in (
      ('stride_h', sh), ('stride_w', sw), ('pad_top', top), ('pad_bottom', bottom),
      ('pad_left', left), ('pad_right', right))}


def _handler(target: str):
  """The computation (a, b, shape, strides, padding) of one FFI handler."""
  def call(a, b, shape, strides, padding):
    ok, why = onednn_build.status()
    if not ok:
      raise EgmError(f"egm's oneDNN convolution is not available here: {why}")
    return onednn_sharding.call(target, shape, a, b, _attributes(strides, padding))
  return call


conv_primitive.register_backend(BACKEND, conv_primitive.Backend(
    _handler(FORWARD), _handler(INPUT_GRAD), _handler(KERNEL_GRAD)))


def conv(x, kernel, strides: tuple, padding: tuple):
  """(B,H,W,C) float32 conv (kh,kw,C,F) -> (B,Ho,Wo,F); `strides` (sh, sw), `padding`
  ((top, bottom), (left, right)) in pixels."""
  return conv_primitive.forward(x, kernel, strides, padding, BACKEND)


def input_grad(cotangent, kernel, x_shape: tuple, strides: tuple, padding: tuple):
  """The vjp of `conv` w.r.t. x: (B,Ho,Wo,F) cotangent, (kh,kw,C,F) kernel -> (B,H,W,C)."""
  return conv_primitive.input_grad(cotangent, kernel, x_shape, strides, padding, BACKEND)


def kernel_grad(x, cotangent, kernel_shape: tuple, strides: tuple, padding: tuple):
  """The vjp of `conv` w.r.t. the kernel: (B,H,W,C) x, (B,Ho,Wo,F) cotangent -> (kh,kw,C,F)."""
  return conv_primitive.kernel_grad(x, cotangent, kernel_shape, strides, padding, BACKEND)
