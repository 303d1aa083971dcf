"""oneDNN's convolution handlers over a mesh of several devices: split along the batch.

XLA's SPMD partitioner cannot split a custom call by itself (it would gather the whole batch
onto every device), so on a run of several devices each handler call is a
`custom_partitioning` function whose rule keeps the batch axis of its activations sharded
as they arrive (any other axis, and the kernel, replicated): the forward and input-gradient
calls run on each device's slice of the batch, and the kernel gradient sums the devices'
partial kernels (`lax.psum` over the batch's mesh axes). A batch the mesh does not divide
is gathered instead. The devices of one process run their calls at once, so each call takes
that process's cores divided by its devices as OpenMP threads (the handlers' `threads`;
0, OpenMP's default, on one device). `jax.vmap` is handled before these calls, by
`conv_primitive`'s batching rule.
"""
import functools
import math
import os

import jax
import numpy as np
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec

FORWARD = 'egm_onednn_conv_forward'
INPUT_GRAD = 'egm_onednn_conv_input_grad'
KERNEL_GRAD = 'egm_onednn_conv_kernel_grad'
# Shardy rules of the three handlers: (operand a, operand b) -> result.
RULES = {
    FORWARD: 'b h w c, i j c f -> b y x f',      # x, kernel -> y
    INPUT_GRAD: 'b y x f, i j c f -> b h w c',   # dy, kernel -> dx
    KERNEL_GRAD: 'b h w c, b y x f -> i j c f',  # x, dy -> dkernel
}


def ffi(target: str, shape, a, b, attributes: dict):
  """The FFI call of `target` with result `shape` (float32, like `a`) on one device."""
  result = jax.ShapeDtypeStruct(tuple(shape), a.dtype)
  return jax.ffi.ffi_call(target, result, vmap_method='sequential')(a, b, **attributes)


def call(target: str, shape, a, b, attributes: dict):
  """`ffi` of handler `target` (FORWARD, INPUT_GRAD, KERNEL_GRAD), split along the batch
  where the run has several devices, each device's calls then on its share of this process's
  cores (`threads_per_call`)."""
  if jax.device_count() == 1:
    return ffi(target, shape, a, b, {**attributes, 'threads': np.int64(0)})
  attributes = {**attributes, 'threads': np.int64(threads_per_call())}
  return _batched(target, tuple(shape), tuple(sorted(attributes.items())))(a, b)


def threads_per_call() -> int:
  """OpenMP threads of one call on a mesh: this process's cores over its devices, at least 1
  (the devices run their calls at once; more threads than cores only contend)."""
  cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
  return max(1, (cores or 1) // jax.local_device_count())


@functools.cache
def _batched(target: str, shape: tuple, attributes: tuple):
  """The mesh-partitioned call for one handler, shape and attributes."""
  return _partitioned(target, shape, attributes)


def _batch_axes(sharding, size: int, mesh):
  """The mesh axes dimension 0 of a `size`-long batch is split over, if they divide it."""
  spec = sharding.spec if isinstance(sharding, NamedSharding) else PartitionSpec()
  axes = spec[0] if len(spec) else None
  if axes is None:
    return None
  names = axes if isinstance(axes, tuple) else (axes,)
  shards = math.prod(mesh.shape[name] for name in names)
  return axes if size % shards == 0 else None


def _partitioned(target: str, shape: tuple, attributes: tuple):
  attributes = dict(attributes)
  batched_result = target != KERNEL_GRAD

  def local_call(a, b):
    local_shape = (a.shape[0], *shape[1:]) if batched_result else shape
    return ffi(target, local_shape, a, b, attributes)

  @custom_partitioning
  def run(a, b):
    return local_call(a, b)

  def shardings(mesh, arg_shapes):
    axes = _batch_axes(arg_shapes[0].sharding, arg_shapes[0].shape[0], mesh)
    activations = NamedSharding(mesh, PartitionSpec(axes, None, None, None))
    replicated = NamedSharding(mesh, PartitionSpec())
    operands = (activations, replicated if batched_result else activations)
    return axes, operands, activations if batched_result else replicated

  def partition(mesh, arg_shapes, result_shape):
    del result_shape
    axes, operands, result = shardings(mesh, arg_shapes)

    def lower(a, b):
      out = local_call(a, b)
      return jax.lax.psum(out, axes) if axes is not None and not batched_result else out

    return mesh, lower, result, operands

  def infer(mesh, arg_shapes, result_shape):
    del result_shape
    return shardings(mesh, arg_shapes)[2]

  run.def_partition(partition, infer_sharding_from_operands=infer, sharding_rule=RULES[target])
  return run
