"""A disk cache of decoded arrays, so that slow sources load fast next time.

Files live in $EGM_CACHE_DIR, else ~/.cache/egm, as uncompressed .npz files
named by a hash of everything the arrays depend on.
"""
import hashlib
import json
import logging
import os
import tempfile
from typing import Callable
import zipfile

import numpy as np

_FORMAT = 1  # bump when the layout of cached arrays changes
log = logging.getLogger(__name__)


def cache_dir() -> str:
  return os.environ.get('EGM_CACHE_DIR') or os.path.join(
      os.path.expanduser('~'), '.cache', 'egm')


def cached(name: str, key: dict,
           build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """Returns `build()`, from the cache when it holds an entry for `key`.

  Args:
    name: readable file-name prefix, e.g. 'cifar10_jpeg'.
    key: JSON-serialisable description of everything the arrays depend on
      (paths, sizes, modification times, image size, ...).
    build: makes the arrays (numeric or unicode; no objects).
  """
  blob = json.dumps({'format': _FORMAT, **key}, sort_keys=True).encode()
  path = os.path.join(
      cache_dir(), f'{name}-{hashlib.sha256(blob).hexdigest()[:20]}.npz')
  try:
    with np.load(path, allow_pickle=False) as stored:
      return {k: stored[k] for k in stored.files}
  except FileNotFoundError:
    pass
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    log.warning('Ignoring the unreadable cache file %s (%s).', path, e)
  arrays = build()
  tmp = None
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.tmp')
    with os.fdopen(fd, 'wb') as f:
      np.savez(f, **arrays)
    os.replace(tmp, path)
  except OSError as e:
    if tmp and os.path.exists(tmp):
      os.remove(tmp)
    log.warning('Could not write the data cache %s (%s); set $EGM_CACHE_DIR '
                'to a writable directory to make the next load faster.',
                path, e)
  return arrays
