"""Host memory for XLA:CPU's per-execution buffers: huge pages (the default), retained, or glibc's.

XLA:CPU allocates the buffers of each execution (an update's intermediates: tens of MB to GB)
anew and frees them when it ends. Under glibc's settings the large blocks are mmapped and
unmapped on every call, so each 4 KiB page faults on first touch, every step, and the kernel
zeroes it: system time that the update pays on top of its arithmetic (benchmarks/OPTIONS.md,
rounds six and seven). `EGM_HOST_MALLOC` chooses:

- 'hugepages' (the default, also when unset): glibc's tunable `glibc.malloc.hugetlb=1` (glibc
  >= 2.35) asks for transparent huge pages on malloc's mappings, 2 MiB per fault. Memory is
  returned on free as before. Tunables are read when a process starts, so `apply_choice()`
  re-executes the process (same pid, arguments and streams) with the tunable added to
  `GLIBC_TUNABLES`, where the kernel gives huge pages on request only (its THP mode is
  'madvise'); where THP is 'always' or 'never', or the C library is not glibc, it does nothing.
- 'retain': `mallopt` with mmap off (`M_MMAP_MAX` 0), no trimming (`M_TRIM_THRESHOLD` at its
  maximum) and one arena (`M_ARENA_MAX` 1): freed blocks stay in the heap and the next step
  reuses them (no faults at all). The process keeps its peak heap, and where calls of very
  different sizes alternate, live buffers split the freed large block and the heap grows by
  another one (srinf on Fashion-MNIST, whose every fifth update also learns the step size:
  16.8 GB resident against 8.9 GB).
- 'glibc': glibc's settings, untouched.

`egm.cli.run` (train.py, eval.py) and the benchmarks' mains call `apply_choice()` before JAX runs
anything; a script of its own calls it at its top. On a GPU or TPU run only the host's own
allocations are concerned.
"""
import ctypes
import os
import platform
import sys

from egm.errors import EgmError

# mallopt parameter numbers, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
# -1 is SIZE_MAX to mallopt's size_t thresholds: never trim.
SETTINGS = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1), (M_ARENA_MAX, 1))
HUGEPAGE_TUNABLE = 'glibc.malloc.hugetlb=1'
THP_MODE_FILE = '/sys/kernel/mm/transparent_hugepage/enabled'
VARIABLE = 'EGM_HOST_MALLOC'
CHOICES = ('hugepages', 'retain', 'glibc')


def choice() -> str:
  """`EGM_HOST_MALLOC`, checked: one of CHOICES; 'hugepages' when unset."""
  value = os.environ.get(VARIABLE) or CHOICES[0]
  if value not in CHOICES:
    raise EgmError(f'{VARIABLE}={value!r} is not one of {CHOICES}: unset it (huge pages), '
                   f'or set {VARIABLE}=retain (freed host memory kept for reuse) or '
                   f'{VARIABLE}=glibc (glibc\'s malloc settings).')
  return value


def retain_freed_memory() -> bool:
  """Sets `SETTINGS` with glibc's `mallopt`; returns whether they were set (False where the C
  library is not glibc)."""
  if platform.libc_ver()[0] != 'glibc':
    return False
  libc = ctypes.CDLL(None)
  return all(libc.mallopt(parameter, value) == 1 for parameter, value in SETTINGS)


def thp_mode() -> str:
  """The kernel's transparent-huge-page mode ('always', 'madvise' or 'never'); '' if unknown."""
  try:
    with open(THP_MODE_FILE, encoding='ascii') as f:
      modes = f.read().split()
  except OSError:
    return ''
  return next((mode.strip('[]') for mode in modes if mode.startswith('[')), '')


def _restartable() -> bool:
  """False for an interpreter session, a notebook kernel, a program read from stdin and a
  frozen executable: none can be started again from its arguments."""
  return not (sys.flags.interactive or sys.argv[0] in ('', '-') or 'ipykernel' in sys.modules
              or getattr(sys, 'frozen', False))


def _tunables() -> list:
  """The settings in `GLIBC_TUNABLES` ('name=value' items)."""
  return [t for t in os.environ.get('GLIBC_TUNABLES', '').split(':') if t]


def hugepages_need_restart() -> bool:
  """Whether this process would get huge pages from glibc's tunable but was started without
  it: glibc >= 2.35, THP mode 'madvise', no `glibc.malloc.hugetlb` in `GLIBC_TUNABLES` (one
  the user set is kept, whatever its value), and a program that can be started again
  (`_restartable()`)."""
  libc, version = platform.libc_ver()
  try:
    recent = tuple(int(v) for v in version.split('.')[:2]) >= (2, 35)
  except ValueError:
    recent = False
  if libc != 'glibc' or not recent or not _restartable():
    return False
  name = HUGEPAGE_TUNABLE.split('=', maxsplit=1)[0] + '='
  return thp_mode() == 'madvise' and not any(t.startswith(name) for t in _tunables())


def restart_with_hugepages():
  """Re-executes this process (`sys.orig_argv`) with `HUGEPAGE_TUNABLE` added to
  `GLIBC_TUNABLES`; does not return."""
  env = dict(os.environ, GLIBC_TUNABLES=':'.join(_tunables() + [HUGEPAGE_TUNABLE]))
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, sys.orig_argv, env)


def apply_choice() -> bool:
  """Applies `choice()`: 'retain' sets `SETTINGS` (returns whether they were set); 'hugepages'
  restarts the process with the tunable where `hugepages_need_restart()`, else returns
  whether the tunable is in effect; 'glibc' returns False."""
  selected = choice()
  if selected == 'retain':
    return retain_freed_memory()
  if selected == 'hugepages':
    if hugepages_need_restart():
      restart_with_hugepages()
    return HUGEPAGE_TUNABLE in _tunables()
  return False
