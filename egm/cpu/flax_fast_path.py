"""egm's fast convolution for a user's plain `flax.linen.Conv` layers, without rewriting them.

    with egm.cpu.fast_convolutions():            # around tracing: jit, grad, a sampler call
      x, info = langevin(energy, x0, key, ...)

    energy = egm.cpu.fast_convolutions()(energy)   # or as a decorator of the energy function

Inside the context a `flax.linen.intercept_methods` interceptor computes each eligible
`nn.Conv.__call__` as egm's convolution (on a CPU run oneDNN's,
`onednn_conv.conv`; else `convolution.matmul_conv`, im2col + one GEMM, or `lax_conv.conv`, as
`convolution.resolve` picks for egm's own modules) with the layer's own parameters
('kernel' (kh, kw, cin, cout), 'bias' (cout,), created by the layer's initialisers), so
parameters, outputs and gradients are those of `nn.Conv` up to float32 rounding. It is a
context manager rather than a sampler option because the implementation of a convolution
belongs to the network, not to the sampler: the same context covers `langevin`, `mala`, a
loss through a chain, or a whole training step, and decorating the energy function keeps
it on wherever that function is traced.

The interceptor acts while the function is traced: a `jax.jit` function traced outside
the context keeps its compiled (lax) convolutions when called inside it.

Eligible: a layer of exactly type `nn.Conv`, 2-D (input (*batch, H, W, C)), any strides,
padding 'SAME', 'SAME_LOWER', 'VALID' or non-negative explicit pads, float32 input,
parameters and compute, and none of: input or kernel dilation, feature groups, a mask, a
precision, a custom `promote_dtype` or conv function. Where oneDNN is not used, an eligible
layer that `convolution.resolve` keeps on lax (under impl='auto' on CPU: few output channels or
FLOPs, or a narrow stride-1 conv with large patches) runs `lax_conv.conv` on CPU, as egm's
own modules do (lax's forward, a plain-convolution input gradient; no forward-mode
derivatives), and the original `nn.Conv` call on other backends. Every other layer runs the
original `nn.Conv` call.
A 2-D `nn.ConvTranspose` layer (float32, 'SAME', 'VALID' or explicit pads, no kernel
dilation, mask, precision or custom dtype promotion, strides no larger than the kernel) runs
as oneDNN's input gradient of a convolution (`conv_transpose`) where 'auto' takes
convolutions to oneDNN; elsewhere, and under impl='matmul', it runs its own call.
"""
import contextlib
import functools

import flax.linen as nn
import jax.numpy as jnp
from flax.linen import dtypes
from flax.linen.linear import canonicalize_padding

from egm.cpu import conv_transpose, convolution, switch
from egm.errors import EgmError

IMPLS = ('auto', 'matmul')
PADDING_NAMES = ('SAME', 'SAME_LOWER', 'VALID')


@contextlib.contextmanager
def fast_convolutions(impl: str = 'auto'):
  """Routes eligible `nn.Conv` calls traced inside through egm's convolution.

  `impl` 'auto' follows `convolution.resolve` per layer, as egm's own modules do (on CPU
  `onednn_conv.conv`, `convolution.matmul_conv` or `lax_conv.conv`; with `EGM_CPU=off` the
  layers keep their own call); 'matmul' takes every eligible layer to
  `convolution.matmul_conv` on any backend. Usable as a decorator: `fast_convolutions()(fn)`
  enters the context on each call of `fn`.
  """
  if impl not in IMPLS:
    raise EgmError(f'fast_convolutions(impl={impl!r}): impl must be one of {IMPLS} '
                   "('auto': egm's own choice per layer and backend; 'matmul': always).")
  if impl == 'auto' and not switch.enabled():
    yield
    return
  with nn.intercept_methods(functools.partial(_intercept, impl=impl)):
    yield


def _intercept(next_fun, args, kwargs, context, *, impl):
  """Flax interceptor: the fast call for an eligible `nn.Conv.__call__`, else `next_fun`."""
  module = context.module
  if context.method_name != '__call__' or len(args) != 1 or kwargs:
    return next_fun(*args, **kwargs)
  inputs = args[0]
  if type(module) is nn.Conv:
    plan = _plan(module, inputs, impl)
    return next_fun(*args, **kwargs) if plan is None else _call(module, inputs, *plan)
  if type(module) is nn.ConvTranspose:
    plan = _plan_transpose(module, inputs, impl)
    return next_fun(*args, **kwargs) if plan is None else _call_transpose(module, inputs, *plan)
  return next_fun(*args, **kwargs)


def _plan(module: nn.Conv, inputs, impl: str):
  """(kernel_size, strides, pads, 'onednn' | 'matmul' | 'lax') when `module` applied to
  `inputs` takes egm's convolution; None for nn.Conv's own call."""
  kernel_size = module.kernel_size
  if isinstance(kernel_size, int) or len(kernel_size) != 2 or jnp.ndim(inputs) < 3:
    return None
  kernel_size = tuple(kernel_size)
  strides, input_dilation, kernel_dilation = (
      _pair(v) for v in (module.strides, module.input_dilation, module.kernel_dilation))
  float32 = _float32(module, inputs)
  plain = (input_dilation == (1, 1) and kernel_dilation == (1, 1)
           and module.feature_group_count == 1 and module.mask is None
           and module.precision is None and module.promote_dtype is dtypes.promote_dtype
           and module.conv_general_dilated is None and module.conv_general_dilated_cls is None)
  if strides is None or not (float32 and plain):
    return None
  in_size = jnp.shape(inputs)[-3:-1]
  pads = _explicit_pads(module.padding, kernel_size, strides, in_size)
  if pads is None or any(n + lo + hi < k for n, (lo, hi), k in zip(in_size, pads, kernel_size)):
    return None  # a mode the fast path lacks, or an empty output: nn.Conv's own call
  choice = convolution.implementation(impl, module.features, jnp.shape(inputs), kernel_size,
                                      strides, pads)
  if choice != 'matmul' and not switch.cpu_backend():
    return None
  return kernel_size, strides, pads, choice


def _plan_transpose(module: nn.ConvTranspose, inputs, impl: str):
  """(kernel_size, strides, forward pads, output size) when `module` applied to `inputs`
  runs on oneDNN (`conv_transpose`); None for nn.ConvTranspose's own call."""
  kernel_size = module.kernel_size
  if (impl != 'auto' or isinstance(kernel_size, int) or len(kernel_size) != 2
      or jnp.ndim(inputs) < 3):
    return None
  kernel_size = tuple(kernel_size)
  strides, kernel_dilation = _pair(module.strides), _pair(module.kernel_dilation)
  float32 = _float32(module, inputs)
  plain = (kernel_dilation == (1, 1) and module.mask is None and module.precision is None
           and module.promote_dtype is dtypes.promote_dtype
           and getattr(module, 'preferred_element_type', None) is None)
  if strides is None or not (float32 and plain and convolution.onednn_usable()):
    return None
  try:
    padding = canonicalize_padding(module.padding, 2)
  except ValueError:
    return None  # nn.ConvTranspose's own call raises its error
  if not isinstance(padding, str):
    padding = tuple(tuple(p) for p in padding)
    if not all(isinstance(v, int) and v >= 0 for p in padding for v in p):
      return None
  plan = conv_transpose.plan(padding, kernel_size, strides, jnp.shape(inputs)[-3:-1])
  return None if plan is None else (kernel_size, strides, *plan)


def _float32(module, inputs) -> bool:
  """Whether `module` applied to `inputs` computes and keeps its parameters in float32."""
  return all(d is None or jnp.dtype(d) == jnp.float32
             for d in (jnp.result_type(inputs), module.param_dtype, module.dtype))


def _pair(value):
  """nn.Conv's int | (a, b) | None (= 1) as (a, b); None for any other length."""
  if value is None:
    return (1, 1)
  if isinstance(value, int):
    return (value, value)
  value = tuple(value)
  return value if len(value) == 2 else None


def _explicit_pads(padding, kernel_size, strides, in_size):
  """nn.Conv's padding as ((lo, hi), (lo, hi)) pixels; None for modes the fast path lacks."""
  try:
    padding = canonicalize_padding(padding, 2)
  except ValueError:
    return None  # nn.Conv's own call raises its error
  if isinstance(padding, str):
    if padding.upper() not in PADDING_NAMES:
      return None
    return convolution.explicit_padding(padding.upper(), kernel_size, strides, in_size)
  pads = tuple(tuple(p) for p in padding)
  return pads if all(isinstance(v, int) and v >= 0 for p in pads for v in p) else None


def _call(module: nn.Conv, inputs, kernel_size, strides, pads, choice):
  """`module`'s output for `inputs` (*batch, H, W, C) through `convolution.convolve` (`choice`
  'onednn', 'matmul' or 'lax')."""
  return _apply(module, inputs, (*kernel_size, inputs.shape[-1], module.features),
                lambda x, kernel: convolution.convolve(x, kernel, strides, pads, choice))


def _call_transpose(module: nn.ConvTranspose, inputs, kernel_size, strides, forward_pads,
                    out_size):
  """`module`'s output for `inputs` (*batch, H, W, C) through `conv_transpose`."""
  channels = (module.features, inputs.shape[-1]) if module.transpose_kernel else (
      inputs.shape[-1], module.features)
  return _apply(module, inputs, (*kernel_size, *channels),
                lambda x, kernel: conv_transpose.conv_transpose(
                    x, kernel, strides, forward_pads, out_size, module.transpose_kernel))


def _apply(module, inputs, kernel_shape, op):
  """`op(x, kernel)` + bias on `inputs` (*batch, H, W, C) with its batch axes flattened and
  restored, the layer's 'kernel' (`kernel_shape`) and 'bias' created by its initialisers."""
  batch_shape = inputs.shape[:-3]
  x = jnp.reshape(inputs, (-1, *inputs.shape[-3:]))
  y = op(x, module.param('kernel', module.kernel_init, kernel_shape, module.param_dtype))
  if module.use_bias:
    y = y + module.param('bias', module.bias_init, (module.features,), module.param_dtype)
  return jnp.reshape(y, (*batch_shape, *y.shape[1:]))
