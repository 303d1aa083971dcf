"""Host memory for XLA:CPU's per-execution buffers: jemalloc, huge pages, retained, or glibc's.

XLA:CPU allocates the buffers of each execution (an update's intermediates: tens of MB to GB)
anew and frees them when it ends. Under glibc's settings the large blocks are mmapped and
unmapped on every call, so each 4 KiB page faults on first touch, every step, and the kernel
zeroes it: system time that the update pays on top of its arithmetic (benchmarks/OPTIONS.md).
`EGM_HOST_MALLOC` chooses (with `EGM_CPU=off`, or where JAX will run on a GPU or TPU, none
of it acts):

- 'auto' (the default, also when unset): 'jemalloc' where its library is installed
  (`libjemalloc.so.2`: Debian/Ubuntu `apt install libjemalloc2`, conda `jemalloc`), else
  'hugepages'.
- 'jemalloc': the process is re-executed once (same pid, arguments and streams) with jemalloc
  in `LD_PRELOAD` and `JEMALLOC_CONF` ahead of the user's own `MALLOC_CONF`: large blocks in
  the ordinary arenas (`oversize_threshold:0`), whose freed pages are reused by the next step
  and returned to the system after jemalloc's decay time, on transparent huge pages. Where the
  library is not found it is an error naming the package.
- 'hugepages': glibc's tunable `glibc.malloc.hugetlb=1` (glibc >= 2.35) asks for transparent
  huge pages on malloc's mappings, 2 MiB per fault. Memory is returned on free as before.
  Tunables are read when a process starts, so the process is re-executed with the tunable
  added to `GLIBC_TUNABLES`, where the kernel gives huge pages on request only (its THP mode
  is 'madvise'); where THP is 'always' or 'never', or the C library is not glibc, nothing
  changes.
- 'retain': `mallopt` with mmap off (`M_MMAP_MAX` 0), no trimming (`M_TRIM_THRESHOLD` at its
  maximum) and one arena (`M_ARENA_MAX` 1): freed blocks stay in the heap and the next step
  reuses them (no faults at all). The process keeps its peak heap, and where calls of very
  different sizes alternate, live buffers split the freed large block and the heap grows by
  another one (docs/cpu.md).
- 'glibc': glibc's settings, untouched.

A process that cannot be started again from its arguments (an interactive interpreter, a
notebook kernel, a program read from stdin, a frozen executable) is never re-executed.
`egm.cli.run` (train.py, eval.py) and the benchmarks' mains call `apply_choice()` before JAX runs
anything; a script of its own calls it at its top. A re-executed process puts its
environment back at once (`take_restart_note`), so the processes it starts inherit neither
egm's preload nor its tunable.
"""
import ctypes
import ctypes.util
import glob
import json
import os
import platform
import sys

from egm.cpu import switch
from egm.errors import EgmError

_restarted_with = ''  # the setting this process was re-executed for, '' if it was not

# mallopt parameter numbers, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
# -1 is SIZE_MAX to mallopt's size_t thresholds: never trim.
SETTINGS = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1), (M_ARENA_MAX, 1))
HUGEPAGE_TUNABLE = 'glibc.malloc.hugetlb=1'
THP_MODE_FILE = '/sys/kernel/mm/transparent_hugepage/enabled'
JEMALLOC_CONF = 'oversize_threshold:0,thp:always,metadata_thp:auto'
JEMALLOC_PACKAGES = ('Debian/Ubuntu: apt install libjemalloc2; Fedora: dnf install jemalloc; '
                     'conda: conda install -c conda-forge jemalloc')
VARIABLE = 'EGM_HOST_MALLOC'
# Set in the environment of a process egm re-executes: what to put back (`take_restart_note`).
RESTORE_VARIABLE = 'EGM_HOST_MALLOC_RESTORE'
CHANGED_VARIABLES = ('LD_PRELOAD', 'MALLOC_CONF', 'GLIBC_TUNABLES')
CHOICES = ('auto', 'jemalloc', 'hugepages', 'retain', 'glibc')


def choice() -> str:
  """`EGM_HOST_MALLOC`, checked: one of CHOICES; 'auto' when unset."""
  value = os.environ.get(VARIABLE) or CHOICES[0]
  if value not in CHOICES:
    raise EgmError(f'{VARIABLE}={value!r} is not one of {CHOICES}: unset it (jemalloc where '
                   'installed, else huge pages), or set it to jemalloc, hugepages, retain '
                   '(freed host memory kept for reuse) or glibc (glibc\'s malloc settings).')
  return value


def jemalloc_library() -> str:
  """The jemalloc shared library to preload: the linker's (`ldconfig`) or the Python
  environment's own (a conda prefix); '' where neither has it."""
  found = ctypes.util.find_library('jemalloc')
  if found:
    return found
  local = sorted(glob.glob(os.path.join(sys.prefix, 'lib', 'libjemalloc.so*')))
  return local[0] if local else ''


def jemalloc_loaded() -> bool:
  """Whether jemalloc is mapped into this process (Linux's /proc/self/maps)."""
  try:
    with open('/proc/self/maps', encoding='ascii', errors='replace') as f:
      return 'libjemalloc' in f.read()
  except OSError:
    return False


def _preloaded() -> list:
  """The libraries in `LD_PRELOAD` (separated by colons or spaces)."""
  return os.environ.get('LD_PRELOAD', '').replace(':', ' ').split()


def jemalloc_needs_restart(library: str) -> bool:
  """Whether this process should be re-executed with `library` preloaded: it is not loaded,
  not already in `LD_PRELOAD` (no second restart, even where preloading it failed), and the
  program can be started again."""
  return (bool(library) and not jemalloc_loaded() and library not in _preloaded()
          and _restartable())


def restart_with_jemalloc(library: str):
  """Re-executes this process with `library` first in `LD_PRELOAD` and `JEMALLOC_CONF` ahead
  of the user's `MALLOC_CONF` (jemalloc lets later options win); does not return."""
  conf = ','.join(c for c in (JEMALLOC_CONF, os.environ.get('MALLOC_CONF', '')) if c)
  _restart(dict(os.environ, LD_PRELOAD=' '.join([library] + _preloaded()), MALLOC_CONF=conf),
           'jemalloc')


def _restart(env: dict, setting: str):
  """Re-executes this process (`sys.orig_argv`: same pid, arguments and streams) in `env`,
  with a note (`RESTORE_VARIABLE`) of the environment it had, which the new process puts
  back (`take_restart_note`)."""
  note = {'pid': os.getpid(), 'setting': setting,
          'environment': {name: os.environ.get(name) for name in CHANGED_VARIABLES}}
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, sys.orig_argv, dict(env, **{RESTORE_VARIABLE: json.dumps(note)}))


def take_restart_note() -> str:
  """In a process egm re-executed: puts back the environment it had before (`LD_PRELOAD`,
  `MALLOC_CONF`, `GLIBC_TUNABLES`; they were read when it started), so that the processes it
  starts inherit none of egm's settings; returns the setting it was re-executed for ('' in
  any other process). A note another process left (its pid differs) is dropped."""
  global _restarted_with
  text = os.environ.pop(RESTORE_VARIABLE, None)
  if text:
    note = json.loads(text)
    if note.get('pid') == os.getpid():
      for name, value in note['environment'].items():
        if value is None:
          os.environ.pop(name, None)
        else:
          os.environ[name] = value
      _restarted_with = note['setting']
  return _restarted_with


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
  _restart(dict(os.environ, GLIBC_TUNABLES=':'.join(_tunables() + [HUGEPAGE_TUNABLE])),
           'hugepages')


def in_effect() -> str:
  """The allocator setting this process runs with: 'jemalloc', 'hugepages' (the tunable is
  set, or this process was re-executed with it) or 'glibc' ('retain' is reported by
  `apply_choice`, which sets it)."""
  if jemalloc_loaded():
    return 'jemalloc'
  hugepages = HUGEPAGE_TUNABLE in _tunables() or _restarted_with == 'hugepages'
  return 'hugepages' if hugepages else 'glibc'


def apply_choice() -> str:
  """Applies `choice()`, re-executing the process where it needs a restart (see the module
  docstring); returns the setting in effect afterwards: 'jemalloc', 'hugepages', 'retain'
  (where `mallopt` took the settings) or 'glibc'. Inert (nothing applied, no restart) with
  `EGM_CPU=off` and where JAX will run on a GPU or TPU (`switch`); a process re-executes
  itself at most once."""
  restarted = take_restart_note()
  if not switch.enabled() or switch.accelerator_expected():
    return in_effect()
  selected = choice()
  if selected == 'retain':
    return 'retain' if retain_freed_memory() else in_effect()
  if selected in ('auto', 'jemalloc'):
    library = jemalloc_library()
    if selected == 'jemalloc' and not library:
      raise EgmError(f'{VARIABLE}=jemalloc, but no jemalloc library (libjemalloc.so) was '
                     f'found. Fix: install it ({JEMALLOC_PACKAGES}), or unset {VARIABLE}.')
    if jemalloc_needs_restart(library) and not restarted:
      restart_with_jemalloc(library)
    if jemalloc_loaded() or selected == 'jemalloc':
      return in_effect()
  if selected in ('auto', 'hugepages') and hugepages_need_restart() and not restarted:
    restart_with_hugepages()
  return in_effect()
