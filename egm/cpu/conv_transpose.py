"""A `flax.linen.ConvTranspose` layer as the input gradient of a convolution, on oneDNN.

`nn.ConvTranspose` computes `lax.conv_transpose`: a stride-1 convolution of the input dilated
by the strides, padded by (a, b) pixels per side, with the kernel as given
(`transpose_kernel=False`, kernel (kh, kw, C, F)) or flipped with its channel axes swapped
(`transpose_kernel=True`, kernel (kh, kw, F, C)). That is exactly the input gradient of the
forward convolution (F -> C channels, the same strides, padding (k-1-a, k-1-b)) whose kernel
is the spatial flip of the given one with in/out swapped (`transpose_kernel=False`) or the
given one itself (`transpose_kernel=True`); oneDNN's backward-data handler computes it
(`onednn_conv.input_grad`), and its derivatives are the other two handlers. A layer whose
forward padding would be negative (a stride larger than the kernel) has no such forward
convolution and keeps lax's call (`plan` returns None).
"""
import inspect

import jax.numpy as jnp
from jax import lax

from egm.cpu import onednn_conv

PADDING_NAMES = ('SAME', 'VALID')
# Whether lax.conv_transpose reads explicit pads as the forward convolution's (newer JAX's
# `use_consistent_padding=True`) rather than as pads of the dilated input.
_CONSISTENT = inspect.signature(lax.conv_transpose).parameters.get('use_consistent_padding')
EXPLICIT_PADS_ARE_FORWARD = bool(_CONSISTENT is not None and _CONSISTENT.default)


def transpose_pads(padding, kernel_size, strides) -> tuple | None:
  """The (a, b) pixels per spatial axis that `lax.conv_transpose` pads its dilated input with.

  `padding` is 'SAME', 'VALID' (the forward convolution's mode, as lax reads them) or
  ((lo, hi), (lo, hi)) explicit pads, read as this JAX's `lax.conv_transpose` reads them.
  """
  if isinstance(padding, str):
    if padding not in PADDING_NAMES:
      return None
    pads = []
    for k, s in zip(kernel_size, strides):
      if padding == 'SAME':
        total = k + s - 2
        before = k - 1 if s > k - 1 else -(-total // 2)
      else:
        total = k + s - 2 + max(k - s, 0)
        before = k - 1
      pads.append((before, total - before))
    return tuple(pads)
  if EXPLICIT_PADS_ARE_FORWARD:
    return tuple((k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(kernel_size, padding))
  return tuple((int(a), int(b)) for a, b in padding)


def plan(padding, kernel_size, strides, in_size) -> tuple | None:
  """(forward pads ((lo, hi), (lo, hi)), output size (Ho, Wo)) for a transposed convolution
  of an (H, W) = `in_size` map; None where it is no convolution's input gradient."""
  pads = transpose_pads(padding, kernel_size, strides)
  if pads is None:
    return None
  forward = tuple((k - 1 - a, k - 1 - b) for k, (a, b) in zip(kernel_size, pads))
  out_size = tuple((n - 1) * s + a + b - k + 2
                   for n, s, k, (a, b) in zip(in_size, strides, kernel_size, pads))
  if any(p < 0 for side in forward for p in side) or any(n < 1 for n in out_size):
    return None
  return forward, out_size


def conv_transpose(x, kernel, strides, forward_pads, out_size, transpose_kernel: bool):
  """(B,H,W,C) -> (B,Ho,Wo,F), float32, as `lax.conv_transpose` with `plan`'s pads and size.

  `kernel` is (kh,kw,C,F), or (kh,kw,F,C) with `transpose_kernel`.
  """
  if transpose_kernel:
    forward_kernel = kernel
  else:
    forward_kernel = jnp.swapaxes(jnp.flip(kernel, (0, 1)), 2, 3)
  features = forward_kernel.shape[2]
  out_shape = (x.shape[0], *out_size, features)
  return onednn_conv.input_grad(x, forward_kernel, out_shape, tuple(strides),
                                tuple(tuple(p) for p in forward_pads))
