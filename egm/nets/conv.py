"""2-D convolution with a backend-chosen implementation: lax conv, or patches x one matmul.

On XLA:CPU a convolution written as shifted strided slices concatenated along channels
(im2col) followed by one GEMM runs its forward and input-gradient passes about 2-3x faster
than `lax.conv_general_dilated` (benchmarks/RESULTS.md). `Conv` has the parameters of
`nn.Conv` ('kernel' (kh, kw, cin, cout), 'bias' (cout,)), so checkpoints do not depend on
the implementation.
"""
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from egm.errors import EgmError

IMPLEMENTATIONS = ('auto', 'lax', 'matmul')


# 'auto' on CPU: the GEMM path for a conv of at least this many output channels and forward
# FLOPs (benchmarks/OPTIONS.md); smaller convs stay on lax, where compile time dominates
MIN_MATMUL_FEATURES = 16
MIN_MATMUL_FLOPS = 2.5e7


def resolve(impl: str, features: int | None = None, whole_map: bool = False,
            flops: float | None = None) -> str:
  """'auto' -> 'matmul' on CPU, 'lax' elsewhere; 'lax' and 'matmul' as given.

  On CPU, 'auto' keeps on lax a conv with fewer than `MIN_MATMUL_FEATURES` output channels
  or fewer than `MIN_MATMUL_FLOPS` forward FLOPs (`flops`, 2·B·Ho·Wo·kh·kw·C·F; None: large),
  unless its kernel covers the whole input map (`whole_map`: the patches are a reshape).
  """
  if impl not in IMPLEMENTATIONS:
    raise EgmError(f'Unknown convolution implementation {impl!r}; set model.conv_impl to one '
                   f'of {IMPLEMENTATIONS}.')
  if impl == 'auto':
    if jax.default_backend() != 'cpu':
      return 'lax'
    small = ((features is not None and features < MIN_MATMUL_FEATURES)
             or (flops is not None and flops < MIN_MATMUL_FLOPS))
    return 'lax' if small and not whole_map else 'matmul'
  return impl


def conv_impl(model_config) -> str:
  """`model.conv_impl` of a config's model section, checked ('auto' where the key is absent)."""
  impl = model_config.get('conv_impl', 'auto')
  resolve(impl)
  return impl


def patches(x, kernel_size, strides, padding):
  """im2col: (B,H,W,C) -> (B,Ho,Wo,kh*kw*C), taps ordered (i, j, c) like a (kh,kw,C,·) kernel.

  `padding` is ((top, bottom), (left, right)) in pixels.
  """
  (kh, kw), (sh, sw) = kernel_size, strides
  x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  b, h, w, c = x.shape
  ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
  if (ho, wo) == (1, 1) and (h, w) == (kh, kw):
    return x.reshape(b, 1, 1, kh * kw * c)
  taps = [lax.slice(x, (0, i, j, 0), (b, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, c),
                    (1, sh, sw, 1)) for i in range(kh) for j in range(kw)]
  return jnp.concatenate(taps, axis=-1)


def matmul_conv(x, kernel, strides, padding):
  """(B,H,W,C) conv (kh,kw,C,F) -> (B,Ho,Wo,F) as `patches` times one GEMM, in x's dtype.

  `padding` is ((top, bottom), (left, right)) in pixels.
  """
  cols = patches(x, kernel.shape[:2], strides, padding)
  return jnp.dot(cols, kernel.reshape(-1, kernel.shape[-1]).astype(x.dtype))


def explicit_padding(padding, kernel_size, strides, in_size) -> tuple:
  """'SAME' | 'VALID' | ((lo, hi), (lo, hi)) -> ((lo, hi), (lo, hi)) as lax computes them."""
  if isinstance(padding, str):
    return tuple(lax.padtype_to_pads(in_size, kernel_size, strides, padding))
  return tuple(tuple(p) for p in padding)


def implementation(impl: str, features: int, x_shape, kernel_size, strides, pads) -> str:
  """`resolve` for one conv of an input of `x_shape` (*batch, H, W, C); `pads` as from
  `explicit_padding`."""
  in_size = tuple(x_shape[-3:-1])
  whole_map = in_size == tuple(kernel_size) and pads == ((0, 0), (0, 0))
  out_positions = math.prod(x_shape[:-3]) * math.prod(
      (n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in zip(in_size, pads, kernel_size, strides))
  flops = 2.0 * out_positions * math.prod(kernel_size) * x_shape[-1] * features
  return resolve(impl, features, whole_map, flops)


class Conv(nn.Module):
  """NHWC conv, (B,H,W,Cin) -> (B,Ho,Wo,features); parameters named and shaped as `nn.Conv`.

  `impl` is 'auto' (see `resolve`), 'lax' or 'matmul'.
  """
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] = (1, 1)
  padding: str | Sequence[Sequence[int]] = 'SAME'
  use_bias: bool = True
  impl: str = 'auto'

  @nn.compact
  def __call__(self, x):
    kernel_size, strides = tuple(self.kernel_size), tuple(self.strides)
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (*kernel_size, x.shape[-1], self.features), jnp.float32)
    pads = explicit_padding(self.padding, kernel_size, strides, x.shape[1:3])
    if implementation(self.impl, self.features, x.shape, kernel_size, strides, pads) == 'matmul':
      y = matmul_conv(x, kernel, strides, pads)
    else:
      y = lax.conv_general_dilated(x, kernel.astype(x.dtype), strides, pads,
                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    if self.use_bias:
      bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
      y = y + bias.astype(y.dtype)
    return y
