"""`folder:PATH` — image files in class sub-folders or flat, or a tar of them.

PATH is a directory or a .tar.gz / .tgz / .tar archive (read as a stream,
without unpacking). Below a single top directory, `train_split/` and
`test_split/` folders are the splits; otherwise every image is training data
and there is no test split. Inside a split, sub-folders are classes (label =
index of the sorted folder name) and loose files have no label. Decoded
arrays are cached (see egm/data/cache.py).
"""
import io
import logging
import os
import tarfile

import numpy as np
import PIL.Image

from egm.data.cache import cached
from egm.data.dataset import ArraySource, Dataset, LoadOptions, image_dataset
from egm.data.image_ops import fit_image, parallel_chunks
from egm.data.sources import register, require_path
from egm.errors import EgmError

_IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.webp', '.tif',
                   '.tiff', '.ppm', '.pgm', '.pbm')
_ARCHIVE_SUFFIXES = ('.tar.gz', '.tgz', '.tar')
_UNREADABLE = (OSError, ValueError, SyntaxError, EOFError,
               PIL.Image.DecompressionBombError)
log = logging.getLogger(__name__)


@register('folder')
def load_folder(argument: str, options: LoadOptions) -> Dataset:
  """Loads a folder or archive of images; see the module docstring."""
  source = f'folder:{argument}'
  path = require_path(argument, source)
  name = _stem(path)
  key = {'source': 'folder', 'path': os.path.abspath(path),
         'stamp': _stamp(path), 'image_size': options.image_size,
         'channels': options.channels, 'train_split': options.train_split,
         'test_split': options.test_split}
  arrays = cached(name, key, lambda: _read(path, options, source))
  skipped = arrays['skipped']
  if skipped.size:
    log.warning('Skipped %d unreadable image file(s) in %s: %s%s.',
                skipped.size, path, ', '.join(skipped[:3]),
                ', ...' if skipped.size > 3 else '')
  splits = {}
  for split in ('train', 'test'):
    if f'{split}_x' in arrays:
      splits[split] = ArraySource(arrays[f'{split}_x'],
                                  arrays.get(f'{split}_label'))
  return image_dataset(name, splits['train'], splits.get('test'),
                       len(arrays['classes']) or None)


def _stem(path: str) -> str:
  base = os.path.basename(os.path.normpath(path))
  for suffix in _ARCHIVE_SUFFIXES:
    if base.endswith(suffix):
      return base[:-len(suffix)]
  return base


def _stamp(path: str) -> list:
  """What the decoded arrays depend on besides the options."""
  if os.path.isfile(path):
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]
  listing = []
  for relpath, full in _folder_files(path):
    stat = os.stat(full)
    listing.append([relpath, stat.st_size, stat.st_mtime_ns])
  return listing


def _is_image(relpath: str) -> bool:
  parts = relpath.split('/')
  hidden = any(p.startswith('.') or p == '__MACOSX' for p in parts)
  return not hidden and relpath.lower().endswith(_IMAGE_SUFFIXES)


def _folder_files(path: str) -> list[tuple[str, str]]:
  """(relative path with '/', full path) of the image files under `path`."""
  files = []
  for root, dirs, names in os.walk(path):
    dirs.sort()
    for name in sorted(names):
      full = os.path.join(root, name)
      relpath = os.path.relpath(full, path).replace(os.sep, '/')
      if _is_image(relpath):
        files.append((relpath, full))
  return files


def _archive_files(path: str, source: str) -> list[tuple[str, bytes]]:
  """(member path, file bytes) of the images in a tar archive, in order."""
  files = []
  try:
    with tarfile.open(path, 'r|*') as tar:
      for member in tar:
        relpath = member.name.removeprefix('./')
        if member.isfile() and _is_image(relpath):
          files.append((relpath, tar.extractfile(member).read()))
  except (tarfile.TarError, OSError, EOFError) as e:
    raise EgmError(
        f'The data source {source!r} could not be read as a tar archive '
        f'({e}). Check that the file is complete (`tar tzf {path}` lists it) '
        'or point folder: at an unpacked directory instead.') from e
  return files


def _read(path: str, options: LoadOptions, source: str) -> dict:
  """Decodes every split; returns the arrays the cache stores."""
  if os.path.isfile(path):
    files = _archive_files(path, source)
  else:
    files = _folder_files(path)
  if not files:
    raise EgmError(
        f'The data source {source!r} holds no image files (looked for '
        f'{", ".join(_IMAGE_SUFFIXES)}). Point folder: at a directory or '
        '.tar.gz of images, in class sub-folders or flat.')
  splits = _assign_splits([relpath for relpath, _ in files], options, source)
  classes = sorted({c for members in splits.values() for _, c in members
                    if c is not None})
  class_index = {c: i for i, c in enumerate(classes)}
  arrays = {'classes': np.array(classes, dtype=str)}
  skipped = []
  for split, members in splits.items():
    images, ok = _decode_all([files[i][1] for i, _ in members], options)
    skipped += [files[i][0] for (i, _), good in zip(members, ok) if not good]
    if not ok.any():
      raise EgmError(
          f'None of the {len(members)} image files of the {split} split of '
          f'{source!r} could be decoded (for example {files[members[0][0]][0]}'
          '). Check that they are valid image files, e.g. by opening one.')
    arrays[f'{split}_x'] = images[ok]
    if members[0][1] is not None:
      labels = np.array([class_index[c] for _, c in members], np.int32)
      arrays[f'{split}_label'] = labels[ok]
  arrays['skipped'] = np.array(skipped, dtype=str)
  return arrays


def _assign_splits(relpaths: list[str], options: LoadOptions,
                   source: str) -> dict[str, list[tuple[int, str | None]]]:
  """Maps 'train' (and 'test') to [(file index, class name or None)]."""
  parts = [tuple(r.split('/')) for r in relpaths]
  if len({p[0] for p in parts}) == 1 and all(len(p) > 1 for p in parts):
    parts = [p[1:] for p in parts]  # a single top directory
  dirs = {p[0] for p in parts if len(p) > 1}
  wanted = {'train': options.train_split, 'test': options.test_split}
  if not dirs & set(wanted.values()):
    return {'train': _with_classes(list(enumerate(parts)), source)}
  if options.train_split not in dirs:
    raise EgmError(
        f'The data source {source!r} has a {options.test_split}/ folder but '
        f'no {options.train_split}/ folder (its folders: '
        f'{", ".join(sorted(dirs))}). Set --config.data.train_split to the '
        'folder that holds the training images.')
  splits = {}
  for split, folder in wanted.items():
    members = [(i, p[1:]) for i, p in enumerate(parts)
               if len(p) > 1 and p[0] == folder]
    if members:
      splits[split] = _with_classes(members, source)
  return splits


def _with_classes(members: list[tuple[int, tuple[str, ...]]],
                  source: str) -> list[tuple[int, str | None]]:
  """Class = first folder below the split; None for loose files."""
  nested = [len(p) > 1 for _, p in members]
  if all(nested):
    return [(i, p[0]) for i, p in members]
  if not any(nested):
    return [(i, None) for i, _ in members]
  loose = [p[0] for (_, p), n in zip(members, nested) if not n]
  raise EgmError(
      f'The data source {source!r} mixes class sub-folders with loose image '
      f'files ({", ".join(loose[:3])}), so the labels are ambiguous. Move the '
      'loose files into a class folder, or flatten the folders.')


def _decode_all(sources: list, options: LoadOptions):
  """Returns uint8 (N, S, S, C) images and a bool (N,) mask of readable ones."""
  size, channels = options.image_size, options.channels
  images = np.zeros((len(sources), size, size, channels), np.uint8)
  ok = np.zeros(len(sources), bool)

  def decode(start: int, stop: int) -> None:
    for j in range(start, stop):
      data = sources[j]
      try:
        with PIL.Image.open(
            io.BytesIO(data) if isinstance(data, bytes) else data) as image:
          images[j] = fit_image(image, size, channels)
        ok[j] = True
      except _UNREADABLE:
        pass

  parallel_chunks(len(sources), decode)
  return images, ok
