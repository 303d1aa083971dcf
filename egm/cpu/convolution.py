"""egm's 2-D convolution: oneDNN, im2col + GEMM, or lax, chosen per layer on a CPU run.

`conv2d` is the one convolution egm's networks call (`egm.nets.conv.Conv`). Off a CPU run,
or with `EGM_CPU=off` (`switch`), it is `lax.conv_general_dilated`. On a CPU run a float32
convolution goes to oneDNN's direct convolution through XLA FFI (`onednn_conv.conv`, the
kernels PyTorch runs on CPU) where it could be built (`onednn_build.status()`); 2-3x faster
per layer than either XLA path (benchmarks/RESULTS.md). Otherwise, on XLA:CPU a convolution
written as shifted strided slices concatenated along channels (im2col) followed by one GEMM
runs its forward and input-gradient passes about 2-3x faster than `lax.conv_general_dilated`
when its GEMM is wide; narrow stride-1 convs run faster as `lax_conv.conv` (lax with a
plain-convolution input gradient). Every path has forward- and reverse-mode derivatives of
any order and `jax.vmap` rules (`onednn_conv`, `lax_conv`).
"""
import math

import jax
import jax.numpy as jnp
from jax import lax

from egm.cpu import lax_conv, onednn_build, onednn_conv, switch
from egm.errors import EgmError

IMPLEMENTATIONS = switch.CONV_IMPLEMENTATIONS

# 'auto' on CPU: the GEMM path for a conv of at least this many output channels and forward
# FLOPs; smaller convs stay on lax, where compile time dominates. A stride-1 conv with fewer
# than WIDE_FEATURES output channels whose patches outgrow PATCH_CACHE_BYTES (a GEMM too
# narrow to pay for copying them at memory speed) stays on lax too (benchmarks/OPTIONS.md).
MIN_MATMUL_FEATURES = 16
MIN_MATMUL_FLOPS = 2.5e7
WIDE_FEATURES = 64
PATCH_CACHE_BYTES = 16 * 2 ** 20


def onednn_usable() -> bool:
  """Whether 'auto' takes float32 convolutions to oneDNN: a CPU run (on a mesh of several
  devices each call is split along the batch, `onednn_sharding`) where `onednn_build` could
  build it."""
  return switch.cpu_backend() and onednn_build.available()


def _require_onednn():
  if not switch.cpu_backend():
    raise EgmError(f"conv_impl('onednn') runs on CPU only, not on {jax.default_backend()}; "
                   "use conv_impl('auto').")
  ok, why = onednn_build.status()
  if not ok:
    raise EgmError(f"conv_impl('onednn') needs egm's oneDNN convolution, which is not "
                   f"available here: {why}. Or use conv_impl('auto').")


def resolve(impl: str, features: int | None = None, whole_map: bool = False,
            flops: float | None = None, stride_one: bool = False,
            patch_bytes: float | None = None, float32: bool = True) -> str:
  """'auto' -> 'onednn' for a `float32` conv where `onednn_usable()`, else 'matmul' or 'lax' on
  CPU by the rule below, 'lax' elsewhere; 'lax', 'matmul' and 'onednn' as given ('onednn'
  raises where it is not available).

  Without oneDNN, on CPU 'auto' keeps on lax a conv with fewer than `MIN_MATMUL_FEATURES`
  output channels or fewer than `MIN_MATMUL_FLOPS` forward FLOPs (`flops`,
  2·B·Ho·Wo·kh·kw·C·F), and a stride-1 conv (`stride_one`) with fewer than `WIDE_FEATURES`
  output channels whose im2col patches take more than `PATCH_CACHE_BYTES` (`patch_bytes`);
  None means large. A kernel that covers the whole input map (`whole_map`: the patches are
  a reshape) takes the GEMM.
  """
  switch.check_conv_impl(impl)
  if impl == 'onednn':
    _require_onednn()
  if impl == 'auto':
    if not switch.cpu_backend():
      return 'lax'
    if float32 and onednn_usable():
      return 'onednn'
    if whole_map:
      return 'matmul'
    small = ((features is not None and features < MIN_MATMUL_FEATURES)
             or (flops is not None and flops < MIN_MATMUL_FLOPS))
    narrow_and_big = (stride_one and features is not None and features < WIDE_FEATURES
                      and (patch_bytes is None or patch_bytes > PATCH_CACHE_BYTES))
    return 'lax' if small or narrow_and_big else 'matmul'
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


def implementation(impl: str, features: int, x_shape, kernel_size, strides, pads,
                   dtype=jnp.float32) -> str:
  """`resolve` for one conv of a `dtype` input of `x_shape` (*batch, H, W, C); `pads` as from
  `explicit_padding`."""
  dtype = jnp.dtype(dtype)
  if impl == 'onednn' and dtype != jnp.float32:
    raise EgmError(f"conv_impl('onednn') runs float32 convolutions only, not {dtype}; "
                   "use conv_impl('auto').")
  in_size = tuple(x_shape[-3:-1])
  whole_map = in_size == tuple(kernel_size) and pads == ((0, 0), (0, 0))
  out_positions = math.prod(x_shape[:-3]) * math.prod(
      (n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in zip(in_size, pads, kernel_size, strides))
  patch_elements = out_positions * math.prod(kernel_size) * x_shape[-1]
  return resolve(impl, features, whole_map, 2.0 * patch_elements * features,
                 tuple(strides) == (1, 1), patch_elements * dtype.itemsize,
                 dtype == jnp.float32)


def convolve(x, kernel, strides, pads, choice: str):
  """(B,H,W,C) conv (kh,kw,C,F) -> (B,Ho,Wo,F) in x's dtype by `choice` ('onednn' | 'matmul' |
  'lax', as `implementation` returns it): `onednn_conv.conv`, `matmul_conv`, or lax's
  convolution (`lax_conv.conv` on CPU)."""
  if choice == 'matmul':
    return matmul_conv(x, kernel, strides, pads)
  kernel = kernel.astype(x.dtype)
  if choice == 'onednn':
    return onednn_conv.conv(x, kernel, strides, pads)
  if switch.enabled() and switch.cpu_backend():
    return lax_conv.conv(x, kernel, strides, pads)
  return lax.conv_general_dilated(x, kernel, strides, pads,
                                  dimension_numbers=lax_conv.DIMENSION_NUMBERS)


def conv2d(x, kernel, strides=(1, 1), padding='SAME'):
  """(B,H,W,C) conv (kh,kw,C,F) -> (B,Ho,Wo,F) in x's dtype, by the implementation the
  switch asks for where it is traced (`switch.current_conv_impl`, 'auto' by default).

  `strides` (sh, sw); `padding` 'SAME' | 'VALID' | ((top, bottom), (left, right)) pixels.
  """
  kernel_size, strides = tuple(kernel.shape[:2]), tuple(strides)
  pads = explicit_padding(padding, kernel_size, strides, x.shape[1:3])
  choice = implementation(switch.current_conv_impl(), kernel.shape[-1], x.shape, kernel_size,
                          strides, pads, x.dtype)
  return convolve(x, kernel, strides, pads, choice)
