"""The one switch of egm's CPU package, and whether the run is a CPU run at all.

`EGM_CPU` (environment) turns the package on or off for a process:

- 'auto' (the default, also when unset): on where JAX runs on the CPU. Convolutions take
  oneDNN or im2col + GEMM (`convolution.resolve`), host memory is jemalloc or huge pages
  (`host_memory`).
- 'off': lax convolutions and glibc's allocator, untouched; as on a GPU or TPU.

On a GPU or TPU the package is inert whatever the switch says: no process re-execution, no
`LD_PRELOAD`, lax convolutions. `accelerator_expected()` tells that before JAX starts (for
`host_memory`, which must act before JAX runs anything); `cpu_backend()` once it runs.

Within a process, `conv_impl(impl)` sets the convolution implementation of functions traced
inside it ('auto' | 'lax' | 'matmul' | 'onednn'), for benchmarks and tests that compare
them; the setting applies when a function is traced, so a function jitted outside the
context keeps the convolutions it was compiled with.
"""
import contextlib
import contextvars
import importlib.metadata
import os

from egm.errors import EgmError

VARIABLE = 'EGM_CPU'
CHOICES = ('auto', 'off')
CONV_IMPLEMENTATIONS = ('auto', 'lax', 'matmul', 'onednn')
# Distributions whose presence means JAX will run on an accelerator, with the device files
# that must exist for it to find one.
_ACCELERATOR_PLUGINS = {'jax-cuda': ('/dev/nvidiactl',), 'jax_cuda': ('/dev/nvidiactl',),
                        'jax-rocm': ('/dev/kfd',), 'jax_rocm': ('/dev/kfd',),
                        'libtpu': ('/dev/accel0', '/dev/vfio')}

_conv_impl = contextvars.ContextVar('egm_conv_impl', default=None)


def choice() -> str:
  """`EGM_CPU`, checked: 'auto' (also when unset) or 'off'."""
  value = os.environ.get(VARIABLE, '').strip().lower() or 'auto'
  if value not in CHOICES:
    raise EgmError(f'{VARIABLE}={os.environ[VARIABLE]!r} is not one of {", ".join(CHOICES)}. '
                   f"Fix: unset {VARIABLE} (egm's CPU package on CPU runs) or set it to off.")
  return value


def enabled() -> bool:
  """Whether the switch leaves the package on (`EGM_CPU` is not 'off')."""
  return choice() == 'auto'


def accelerator_expected() -> bool:
  """Whether JAX will run on a GPU or TPU, told without starting JAX: `JAX_PLATFORMS` names
  another platform first, or (without it) a CUDA, ROCm or TPU plugin is installed beside a
  device it can open."""
  platforms = os.environ.get('JAX_PLATFORMS', '').strip()
  if platforms:
    return platforms.split(',')[0].strip().lower() != 'cpu'
  for dist in importlib.metadata.distributions():
    name = (dist.metadata['Name'] or '').lower()
    for prefix, devices in _ACCELERATOR_PLUGINS.items():
      if name.startswith(prefix) and any(os.path.exists(d) for d in devices):
        return True
  return False


def cpu_backend() -> bool:
  """Whether JAX's default backend is the CPU (starts JAX's backends)."""
  import jax  # here: `host_memory` imports this module before JAX may be imported
  return jax.default_backend() == 'cpu'


def check_conv_impl(impl: str) -> str:
  """`impl` if it is one of CONV_IMPLEMENTATIONS, else an EgmError naming them."""
  if impl not in CONV_IMPLEMENTATIONS:
    raise EgmError(f'Unknown convolution implementation {impl!r}; use one of '
                   f'{CONV_IMPLEMENTATIONS} (egm.cpu.conv_impl).')
  return impl


def current_conv_impl() -> str:
  """The implementation asked for where a convolution is traced now: the innermost
  `conv_impl` context's, else 'auto' (or 'lax' with `EGM_CPU=off`)."""
  impl = _conv_impl.get()
  if impl is not None:
    return impl
  return 'auto' if enabled() else 'lax'


@contextlib.contextmanager
def conv_impl(impl: str):
  """Within: convolutions traced take `impl` ('auto' | 'lax' | 'matmul' | 'onednn')."""
  token = _conv_impl.set(check_conv_impl(impl))
  try:
    yield
  finally:
    _conv_impl.reset(token)
