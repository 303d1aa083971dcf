"""Host memory reuse, opt-in: glibc malloc settings under which freed blocks are kept.

XLA:CPU allocates the buffers of each execution (an update's intermediates: tens of MB to GB)
anew and frees them when it ends. Under glibc's defaults the large blocks are mmapped and
unmapped on every call, so each of their pages faults on first touch, every step, and the
kernel zeroes it: system time that the update pays on top of its arithmetic
(benchmarks/OPTIONS.md, round six). With mmap off (`M_MMAP_MAX` 0), no trimming
(`M_TRIM_THRESHOLD` at its maximum) and one arena (`M_ARENA_MAX` 1), freed blocks stay in the
heap and the next step reuses them. The cost is memory: the process keeps its peak heap, and
where programs of very different sizes alternate (srinf's step-size updates every fifth step)
live buffers split the freed large block and the heap grows by another one (srinf on
Fashion-MNIST: 16.8 GB resident against 8.9 GB). So it is a choice, not the default:
`EGM_HOST_MALLOC=retain` makes `egm.cli.run` (train.py, eval.py) apply it before JAX runs
anything; a script of its own calls `retain_freed_memory()` at its top (a thread joins the one
arena only if it has not allocated yet). On a GPU or TPU run only the host's own allocations
are concerned.
"""
import ctypes
import os
import platform

from egm.errors import EgmError

# mallopt parameter numbers, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
# -1 is SIZE_MAX to mallopt's size_t thresholds: never trim.
SETTINGS = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1), (M_ARENA_MAX, 1))
VARIABLE = 'EGM_HOST_MALLOC'
CHOICES = ('default', 'retain')


def choice() -> str:
  """`EGM_HOST_MALLOC`, checked: 'default' (glibc's settings; also when unset) or 'retain'."""
  value = os.environ.get(VARIABLE) or 'default'
  if value not in CHOICES:
    raise EgmError(f'{VARIABLE}={value!r} is not one of {CHOICES}: unset it (glibc\'s '
                   f'settings) or set {VARIABLE}=retain (freed host memory kept for reuse).')
  return value


def retain_freed_memory() -> bool:
  """Sets `SETTINGS` with glibc's `mallopt`; returns whether they were set (False where the C
  library is not glibc)."""
  if platform.libc_ver()[0] != 'glibc':
    return False
  libc = ctypes.CDLL(None)
  return all(libc.mallopt(parameter, value) == 1 for parameter, value in SETTINGS)


def apply_choice() -> bool:
  """`retain_freed_memory()` where `choice()` is 'retain'; returns whether settings were set."""
  return choice() == 'retain' and retain_freed_memory()
