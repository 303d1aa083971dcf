"""Host memory reuse: glibc malloc settings under which freed blocks are kept for the next step.

XLA:CPU allocates the buffers of each execution (an update's intermediates: tens to hundreds
of MB) anew and frees them when it ends. Under glibc's defaults the large blocks are mmapped
and unmapped on every call, so each of their pages faults on first touch, every step, and the
kernel zeroes it: system time that the update pays on top of its arithmetic
(benchmarks/OPTIONS.md, round six). With mmap off (`M_MMAP_MAX` 0), no trimming
(`M_TRIM_THRESHOLD` at its maximum) and one arena (`M_ARENA_MAX` 1), freed blocks stay in the
heap and the next step reuses them. The cost: the process keeps its peak heap. On a GPU or
TPU run only the host's own allocations are concerned.

A thread joins the one arena only if it has not allocated yet, so the settings must come
before JAX runs anything: `egm.cli.run` (train.py, eval.py) applies them first; a script of
its own applies them with `retain_freed_memory()` at its top. `EGM_HOST_MALLOC=default`
leaves glibc's settings as they are.
"""
import ctypes
import os
import platform

from egm.errors import EgmError

# mallopt parameter numbers, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
SETTINGS = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2 ** 31 - 1), (M_ARENA_MAX, 1))
VARIABLE = 'EGM_HOST_MALLOC'
CHOICES = ('retain', 'default')


def choice() -> str:
  """`EGM_HOST_MALLOC`, checked: 'retain' (also when unset) or 'default'."""
  value = os.environ.get(VARIABLE) or 'retain'
  if value not in CHOICES:
    raise EgmError(f'{VARIABLE}={value!r} is not one of {CHOICES}: unset it (egm keeps freed '
                   f'host memory for reuse) or set {VARIABLE}=default (glibc\'s settings).')
  return value


def retain_freed_memory() -> bool:
  """Sets `SETTINGS` with glibc's `mallopt`; returns whether they were set (False where the C
  library is not glibc, or `choice()` is 'default')."""
  if choice() == 'default' or platform.libc_ver()[0] != 'glibc':
    return False
  libc = ctypes.CDLL(None)
  return all(libc.mallopt(parameter, value) == 1 for parameter, value in SETTINGS)
