"""Reads and writes PyTorch state dicts (`torch.save` files) with numpy and pickle, without torch.

Two formats are read: the zip format (default since PyTorch 1.6: `<root>/data.pkl` whose
persistent ids name storages stored as `<root>/data/<key>`) and the legacy format (PyTorch < 1.6:
magic number, protocol, system info, the pickle, the storage keys, then each storage as an int64
element count followed by its bytes). Only state dicts of tensors are supported; the unpickler
resolves a short allow-list of globals and refuses anything else.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

from egm.errors import EgmError

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}
_DTYPE_STORAGES = {np.dtype(v): k for k, v in _STORAGE_DTYPES.items()}


class _StorageType:
  """Stands in for a `torch.<Name>Storage` class inside the pickle."""

  def __init__(self, name: str):
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *unused_args):
  """numpy `torch._utils._rebuild_tensor_v2`: a strided view (strides in elements) of storage."""
  if offset + sum((n - 1) * s for n, s in zip(size, stride)) >= len(storage) and all(size):
    raise EgmError('A tensor in the PyTorch checkpoint reaches past the end of its storage.')
  item = storage.itemsize
  return np.lib.stride_tricks.as_strided(
      storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride))


def _rebuild_parameter(data, *unused_args):
  return data


_GLOBALS = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
    ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
  """Unpickles a state dict; `load_storage(type, key, numel)` supplies the storages."""

  def __init__(self, file, load_storage):
    super().__init__(file)
    self._load_storage = load_storage
    self.storages = {}

  def find_class(self, module, name):
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _StorageType(name)
    if (module, name) in _GLOBALS:
      return _GLOBALS[(module, name)]
    raise EgmError(
        f'The PyTorch checkpoint refers to {module}.{name}, which this reader does not '
        'support (it reads state dicts of tensors only). Save the weights with '
        'torch.save(model.state_dict(), path), or convert them to .npz.')

  def persistent_load(self, pid):
    if not isinstance(pid, tuple) or pid[0] != 'storage':
      raise EgmError(f'Unsupported persistent id {pid!r} in the PyTorch checkpoint.')
    storage_type, key, unused_location, numel = pid[1:5]
    key = str(key)
    if key not in self.storages:
      self.storages[key] = self._load_storage(storage_type.dtype, key, numel)
    storage = self.storages[key]
    view = pid[5] if len(pid) > 5 else None
    if view is not None:  # Legacy views: (view_key, offset, size).
      unused_view_key, offset, size = view
      return storage[offset:offset + size]
    return storage


def _read_zip(path: str) -> dict:
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist() if n.endswith('/data.pkl') or n == 'data.pkl']
    if not pickles:
      raise EgmError(f'{path} is a zip file but holds no data.pkl: not a torch.save checkpoint.')
    root = pickles[0][:-len('data.pkl')]
    names = set(archive.namelist())
    big = f'{root}byteorder' in names and archive.read(f'{root}byteorder') == b'big'

    def load_storage(dtype, key, numel):
      raw = archive.read(f'{root}data/{key}')
      order = '>' if big else '<'
      return np.frombuffer(raw, dtype=dtype.newbyteorder(order), count=numel).astype(dtype)

    with archive.open(pickles[0]) as f:
      return _Unpickler(io.BytesIO(f.read()), load_storage).load()


def _read_legacy(path: str) -> dict:
  with open(path, 'rb') as f:
    magic = pickle.load(f)
    if magic != _LEGACY_MAGIC:
      raise EgmError(
          f'{path} is neither a zip nor a legacy torch.save file (bad magic number). '
          'Pass the PyTorch weights file itself, or an .npz of its arrays.')
    pickle.load(f)  # Protocol version.
    pickle.load(f)  # System info (endianness, type sizes).
    storages = {}

    def load_storage(dtype, key, numel):
      storages[key] = (dtype, numel)
      return np.empty(numel, dtype)  # Filled in below, in place.

    unpickler = _Unpickler(f, load_storage)
    result = unpickler.load()
    keys = pickle.load(f)
    for key in keys:
      dtype, numel = storages[str(key)]
      (count,) = struct.unpack('<q', f.read(8))
      raw = f.read(count * dtype.itemsize)
      if count != numel or len(raw) != count * dtype.itemsize:
        raise EgmError(f'{path} is truncated or corrupt (storage {key}).')
      # The tensors unpickled above are views of these storages: fill them in place.
      unpickler.storages[str(key)][:] = np.frombuffer(raw, dtype.newbyteorder('<'))
  return result


def read_torch_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a `torch.save`d state dict into {name: numpy array}, with torch if importable."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    torch = None
  try:
    if torch is not None:
      state = torch.load(path, map_location='cpu', weights_only=True)
      return {k: v.numpy() for k, v in state.items() if hasattr(v, 'numpy')}
    state = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
  except (pickle.UnpicklingError, EOFError, KeyError, ValueError, RuntimeError) as e:
    raise EgmError(
        f'Could not read {path} as a PyTorch checkpoint ({type(e).__name__}: {e}). Pass the '
        'PyTorch weights file (torch.save of a state dict) or an .npz of its arrays.') from e
  if not isinstance(state, dict):
    raise EgmError(f'{path} holds a {type(state).__name__}, not a state dict of tensors.')
  return {k: np.array(v) for k, v in state.items() if isinstance(v, np.ndarray)}


def _pickle_str(text: str) -> bytes:
  data = text.encode('utf-8')
  return b'X' + struct.pack('<I', len(data)) + data  # BINUNICODE.


def _pickle_int(value: int) -> bytes:
  return b'J' + struct.pack('<i', value)  # BININT.


def _pickle_ints(values) -> bytes:
  return b'(' + b''.join(_pickle_int(int(v)) for v in values) + b't'  # MARK ... TUPLE.


def _pickle_global(module: str, name: str) -> bytes:
  return b'c' + module.encode() + b'\n' + name.encode() + b'\n'  # GLOBAL.


def write_torch_state_dict(path: str, state: dict[str, np.ndarray]) -> None:
  """Writes {name: array} in torch.save's zip format, readable by `torch.load` and this module.

  The pickle is written opcode by opcode (protocol 2), since pickling references to torch's
  classes with the pickle module would need torch importable.
  """
  ordered_dict = _pickle_global('collections', 'OrderedDict') + b')R'  # OrderedDict().
  body = [b'\x80\x02', ordered_dict, b'(']  # PROTO 2, the dict, MARK for SETITEMS.
  storages = []
  for key, value in state.items():
    value = np.array(value, order='C')
    if value.dtype not in _DTYPE_STORAGES:
      raise EgmError(f'Cannot write {key}: dtype {value.dtype} has no PyTorch storage type.')
    strides = [s // value.itemsize for s in value.strides]
    storage_id = (b'(' + _pickle_str('storage') +
                  _pickle_global('torch', _DTYPE_STORAGES[value.dtype]) +
                  _pickle_str(str(len(storages))) + _pickle_str('cpu') +
                  _pickle_int(value.size) + b'tQ')  # TUPLE, BINPERSID.
    tensor = (_pickle_global('torch._utils', '_rebuild_tensor_v2') + b'(' + storage_id +
              _pickle_int(0) + _pickle_ints(value.shape) + _pickle_ints(strides) +
              b'\x89' + ordered_dict + b'tR')  # NEWFALSE ... TUPLE, REDUCE.
    body += [_pickle_str(key), tensor]
    storages.append(value.astype(value.dtype.newbyteorder('<')).tobytes())
  body.append(b'u.')  # SETITEMS, STOP.
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
    archive.writestr('archive/data.pkl', b''.join(body))
    archive.writestr('archive/byteorder', 'little')
    for i, raw in enumerate(storages):
      archive.writestr(f'archive/data/{i}', raw)
    archive.writestr('archive/version', '3\n')
