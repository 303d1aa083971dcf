"""A 2-D convolution and its two derivatives as JAX primitives, one family per backend.

Three bilinear maps (NHWC, HWIO, float):

  forward(x, kernel)          (B,H,W,C), (kh,kw,C,F) -> (B,Ho,Wo,F)
  input_grad(dy, kernel)      (B,Ho,Wo,F), (kh,kw,C,F) -> (B,H,W,C)   the vjp of forward in x
  kernel_grad(x, dy)          (B,H,W,C), (B,Ho,Wo,F) -> (kh,kw,C,F)   the vjp of forward in kernel

Each is linear in each argument and each one's transposes are the other two, so the rules
below give every derivative JAX users expect, of any order and in both modes: `jax.jvp`,
`jax.grad`, Hessian-vector products (forward over reverse), `jax.checkpoint`. `jax.vmap`
over the batch of examples folds the mapped axis into B (one call); any other mapping (a
mapped kernel, per-example kernel gradients) falls back to `jax.vmap` of lax's convolution,
which has the same values. A backend (`register_backend`) supplies the three computations;
`lax_conv` and `onednn_conv` are the two backends.
"""
import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax._src import dispatch as _dispatch
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')


@dataclasses.dataclass(frozen=True)
class Backend:
  """The three computations of one backend, each (a, b, shape, strides, padding) -> array of
  `shape`."""
  forward: Callable
  input_grad: Callable
  kernel_grad: Callable


BACKENDS: dict[str, Backend] = {}


def lax_forward(x, kernel, strides, padding):
  """lax's convolution (the reference of every backend)."""
  return lax.conv_general_dilated(x, kernel, strides, padding,
                                  dimension_numbers=DIMENSION_NUMBERS)


def lax_input_grad(dy, kernel, x_shape, strides, padding):
  """JAX's own vjp of `lax_forward` in x."""
  x = jax.ShapeDtypeStruct(tuple(x_shape), dy.dtype)
  return jax.linear_transpose(lambda v: lax_forward(v, kernel, strides, padding), x)(dy)[0]


def lax_kernel_grad(x, dy, kernel_shape, strides, padding):
  """JAX's own vjp of `lax_forward` in the kernel."""
  kernel = jax.ShapeDtypeStruct(tuple(kernel_shape), x.dtype)
  return jax.linear_transpose(lambda k: lax_forward(x, k, strides, padding), kernel)(dy)[0]


def output_shape(x_shape, kernel_shape, strides, padding) -> tuple:
  """(B,Ho,Wo,F) of a (B,H,W,C) input, (kh,kw,C,F) kernel, strides and ((lo, hi), (lo, hi))."""
  b, h, w, _ = x_shape
  kh, kw, _, features = kernel_shape
  (sh, sw), ((top, bottom), (left, right)) = strides, padding
  return (b, (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1, features)


def _primitive(name: str) -> Primitive:
  prim = Primitive(f'egm_conv_{name}')
  prim.def_abstract_eval(
      lambda a, b, *, shape, strides, padding, backend: jax.core.ShapedArray(shape, a.dtype))
  return prim


forward_p = _primitive('forward')
input_grad_p = _primitive('input_grad')
kernel_grad_p = _primitive('kernel_grad')
_COMPUTATION = {forward_p: 'forward', input_grad_p: 'input_grad', kernel_grad_p: 'kernel_grad'}
_REFERENCE = {forward_p: lambda a, b, shape, s, p: lax_forward(a, b, s, p),
              input_grad_p: lax_input_grad, kernel_grad_p: lax_kernel_grad}


def forward(x, kernel, strides, padding, backend: str):
  """`forward` on `backend`: (B,H,W,C), (kh,kw,C,F) -> (B,Ho,Wo,F)."""
  shape = output_shape(x.shape, kernel.shape, strides, padding)
  return forward_p.bind(x, kernel, shape=shape, strides=_ints(strides), padding=_pads(padding),
                        backend=backend)


def input_grad(dy, kernel, x_shape, strides, padding, backend: str):
  """`input_grad` on `backend`: (B,Ho,Wo,F), (kh,kw,C,F) -> (B,H,W,C) = `x_shape`."""
  return input_grad_p.bind(dy, kernel, shape=_ints(x_shape), strides=_ints(strides),
                           padding=_pads(padding), backend=backend)


def kernel_grad(x, dy, kernel_shape, strides, padding, backend: str):
  """`kernel_grad` on `backend`: (B,H,W,C), (B,Ho,Wo,F) -> (kh,kw,C,F) = `kernel_shape`."""
  return kernel_grad_p.bind(x, dy, shape=_ints(kernel_shape), strides=_ints(strides),
                            padding=_pads(padding), backend=backend)


def _ints(values) -> tuple:
  return tuple(int(v) for v in values)


def _pads(padding) -> tuple:
  return tuple((int(lo), int(hi)) for lo, hi in padding)


# Transposes: <forward(x, k), g> = <x, input_grad(g, k)> = <k, kernel_grad(x, g)>.
def _forward_t_x(ct, x, kernel, *, shape, strides, padding, backend):
  return input_grad(ct, kernel, x.aval.shape, strides, padding, backend)


def _forward_t_kernel(ct, x, kernel, *, shape, strides, padding, backend):
  return kernel_grad(x, ct, kernel.aval.shape, strides, padding, backend)


def _input_grad_t_dy(ct, dy, kernel, *, shape, strides, padding, backend):
  return forward(ct, kernel, strides, padding, backend)


def _input_grad_t_kernel(ct, dy, kernel, *, shape, strides, padding, backend):
  return kernel_grad(ct, dy, kernel.aval.shape, strides, padding, backend)


def _kernel_grad_t_x(ct, x, dy, *, shape, strides, padding, backend):
  return input_grad(dy, ct, x.aval.shape, strides, padding, backend)


def _kernel_grad_t_dy(ct, x, dy, *, shape, strides, padding, backend):
  return forward(x, ct, strides, padding, backend)


ad.defbilinear(forward_p, _forward_t_x, _forward_t_kernel)
ad.defbilinear(input_grad_p, _input_grad_t_dy, _input_grad_t_kernel)
ad.defbilinear(kernel_grad_p, _kernel_grad_t_x, _kernel_grad_t_dy)


def _batch_rule(prim):
  """vmap: a mapped activation with an unmapped kernel folds into the batch axis (one call);
  anything else is `jax.vmap` of lax's computation."""
  def rule(args, dims, *, shape, strides, padding, backend):
    (a, b), (da, db) = args, dims
    folds = prim is not kernel_grad_p and da is not None and db is None
    if folds:
      a = jnp.moveaxis(a, da, 0)
      v, n = a.shape[:2]
      out = prim.bind(a.reshape((v * n,) + a.shape[2:]), b, shape=(v * n,) + shape[1:],
                      strides=strides, padding=padding, backend=backend)
      return out.reshape((v, n) + out.shape[1:]), 0
    reference = lambda a, b: _REFERENCE[prim](a, b, shape, strides, padding)
    return jax.vmap(reference, in_axes=(da, db))(a, b), 0
  return rule


def _impl(prim):
  """The computation of `prim` on its backend, as a function of (a, b, **params)."""
  name = _COMPUTATION[prim]

  def compute(a, b, *, shape, strides, padding, backend):
    return getattr(BACKENDS[backend], name)(a, b, shape, strides, padding)
  return compute


for _prim in _COMPUTATION:
  batching.primitive_batchers[_prim] = _batch_rule(_prim)
  _prim.def_impl(_impl(_prim))
  mlir.register_lowering(_prim, mlir.lower_fun(_impl(_prim), multiple_results=False))
  # A backend may lower to a `custom_partitioning` call (oneDNN on a mesh, `onednn_sharding`),
  # which needs the devices while lowering; JAX's own cuDNN primitives register the same way.
  _dispatch.prim_requires_devices_during_lowering.add(_prim)


def register_backend(name: str, backend: Backend) -> None:
  """Makes `backend` computable as `backend=name` (its computations run where the primitives
  are lowered or called eagerly)."""
  BACKENDS[name] = backend

