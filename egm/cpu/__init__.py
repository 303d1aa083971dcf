"""egm's CPU package: fast convolutions (oneDNN, im2col + GEMM, lax with a plain-convolution
input gradient), a fast path for plain Flax convolution layers, and the host allocator.

One switch, `EGM_CPU` ('auto' | 'off', `switch`); inert on GPU and TPU. `conv2d` is the
convolution egm's networks call; `conv_impl(impl)` picks its implementation for what is
traced inside; `fast_convolutions()` routes a user's `nn.Conv` layers through it;
`host_memory.apply_choice()` sets the allocator before JAX starts. The names are imported on
first use, so `host_memory` loads without JAX.
"""
import importlib

_EXPORTS = {'conv2d': 'egm.cpu.convolution', 'conv_impl': 'egm.cpu.switch',
            'fast_convolutions': 'egm.cpu.flax_fast_path'}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
  if name in _EXPORTS:
    return getattr(importlib.import_module(_EXPORTS[name]), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
