"""Builds, loads and registers egm's oneDNN convolution (native/onednn_conv.cc) as XLA FFI targets.

The source is compiled once per (source, jaxlib, oneDNN) into a cache directory
(`$EGM_NATIVE_CACHE`, else `~/.cache/egm/native`) with the C++ compiler `$CXX` (else `c++`),
against the FFI headers jaxlib ships and the oneDNN of the `onednn-cpu-gomp` and
`onednn-devel-cpu-gomp` wheels (egm's dependencies on Linux x86-64). A finished build is
renamed into place under a lock, so processes that need it at once build it once and none
sees half a library. `status()` says whether the targets are registered, or why not (and
logs the reason once as a warning, with the fix; the convolutions then fall back to XLA's);
nothing here raises on a missing compiler or library.
"""
import ctypes
import fcntl
import functools
import hashlib
import importlib.metadata
import logging
import os
import pathlib
import subprocess
import sys
import tempfile

import jax
import jaxlib

SOURCE = pathlib.Path(__file__).parent / 'native' / 'onednn_conv.cc'
# FFI target name -> handler symbol in the built library.
TARGETS = {'egm_onednn_conv_forward': 'EgmConvForward',
           'egm_onednn_conv_input_grad': 'EgmConvBackwardData',
           'egm_onednn_conv_kernel_grad': 'EgmConvBackwardWeights'}
RUNTIME_DISTRIBUTIONS = ('onednn-cpu-gomp', 'onednn')
HEADER_DISTRIBUTIONS = ('onednn-devel-cpu-gomp', 'onednn-devel')
INSTALL_HINT = ("pip install 'onednn-cpu-gomp==2023.2.*' 'onednn-devel-cpu-gomp==2023.2.*' "
                'and a C++17 compiler (set $CXX if it is not `c++`)')


def _find_in_distributions(names, suffix: str) -> pathlib.Path | None:
  """The first installed file ending in `suffix` among the distributions `names`."""
  for name in names:
    try:
      dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
      continue
    for file in dist.files or ():
      if str(file).endswith(suffix):
        return pathlib.Path(dist.locate_file(file)).resolve()
  return None


def _cache_dir() -> pathlib.Path:
  root = os.environ.get('EGM_NATIVE_CACHE') or pathlib.Path.home() / '.cache' / 'egm' / 'native'
  return pathlib.Path(root)


def _build(library_dir: pathlib.Path, include_dir: pathlib.Path) -> pathlib.Path:
  """The compiled library for this source, jaxlib and oneDNN (built now if not cached).

  Processes that need it at once build it once: the first takes a lock in the cache
  directory and compiles (saying so on stderr), the others wait for it and load its result.
  """
  key = hashlib.sha256(b'\0'.join([SOURCE.read_bytes(), jaxlib.__version__.encode(),
                                   str(library_dir).encode()])).hexdigest()[:16]
  target = _cache_dir() / f'egm_onednn_conv_{key}.so'
  if target.exists():
    return target
  target.parent.mkdir(parents=True, exist_ok=True)
  with open(target.with_suffix('.lock'), 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if target.exists():  # built by the process that held the lock
      return target
    print(f"egm: compiling its oneDNN convolution into {target.parent} (once per jaxlib and "
          'oneDNN version; about a minute)...', file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
      built = pathlib.Path(scratch) / target.name
      command = [os.environ.get('CXX', 'c++'), '-O2', '-shared', '-fPIC', '-std=c++17',
                 '-w', f'-I{jax.ffi.include_dir()}', f'-I{include_dir}', str(SOURCE),
                 '-o', str(built), f'-L{library_dir}', '-ldnnl', f'-Wl,-rpath,{library_dir}']
      try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
      except OSError as error:  # no compiler at all
        raise RuntimeError(f'compiling {SOURCE.name} failed: {error}') from error
      if result.returncode != 0:
        raise RuntimeError(f'compiling {SOURCE.name} failed: {result.stderr[-2000:]}')
      os.replace(built, target)
  return target


@functools.cache
def status() -> tuple[bool, str]:
  """(True, library path) once the FFI targets are registered for the CPU, else (False, why)."""
  ok, detail = _register()
  if not ok:
    logging.getLogger(__name__).warning(
        "egm's oneDNN convolution is unavailable, XLA's convolution runs instead: %s", detail)
  return ok, detail


def _register() -> tuple[bool, str]:
  library = _find_in_distributions(RUNTIME_DISTRIBUTIONS, 'libdnnl.so')
  header = _find_in_distributions(HEADER_DISTRIBUTIONS, 'oneapi/dnnl/dnnl.hpp')
  if library is None or header is None:
    return False, f'oneDNN runtime or headers not installed; {INSTALL_HINT}'
  try:
    path = _build(library.parent, header.parent.parent.parent)
    handlers = ctypes.cdll.LoadLibrary(str(path))
  except (OSError, RuntimeError) as error:
    return False, f'{error}; {INSTALL_HINT}'
  for target, symbol in TARGETS.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(handlers, symbol)),
                                platform='cpu')
  return True, str(path)


def available() -> bool:
  """Whether egm's oneDNN convolution can run here (building it on first call)."""
  return status()[0]
