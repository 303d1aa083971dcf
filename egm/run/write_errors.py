"""Failed writes to a run directory (disk full, read-only, not a directory) in one sentence each."""
import errno
import re

# errno values by the words the C library and TensorStore use for them.
_CAUSES = (
    (errno.ENOSPC, 'No space left on device', 'the disk is full',
     'free space on that disk, or point --workdir at a disk with room (lower '
     '--config.train.keep_checkpoints to keep fewer checkpoints)'),
    (errno.EDQUOT, 'Disk quota exceeded', 'the disk quota is exceeded',
     'free space within the quota, or point --workdir at a disk with room'),
    (errno.EROFS, 'Read-only file system', 'the file system is read-only',
     'point --workdir at a writable disk'),
    (errno.EACCES, 'Permission denied', 'permission is denied',
     'make the directory writable (chmod/chown), or point --workdir at a writable directory'),
    (errno.EPERM, 'Operation not permitted', 'the operation is not permitted',
     'make the directory writable, or point --workdir at a writable directory'),
    (errno.ENOTDIR, 'Not a directory', 'a part of the path is a file, not a directory',
     'point --workdir at a directory path'),
)


def _errno_of(error: BaseException):
  """The errno behind `error`: an OSError's, or the `os_error_code` TensorStore writes."""
  if isinstance(error, OSError) and error.errno:
    return error.errno
  found = re.search(r"os_error_code='?(\d+)", str(error))
  return int(found.group(1)) if found else None


def cause_and_fix(error: BaseException) -> tuple[str, str]:
  """(what went wrong, what to do) for a failed write; an unknown error keeps its first line."""
  code, text = _errno_of(error), str(error)
  for value, words, cause, fix in _CAUSES:
    if code == value or words in text:
      return cause, fix
  first = text.strip().splitlines()[0][:300].rstrip('.') if text.strip() else type(error).__name__
  return first, 'check that the directory is on a healthy, writable disk with free space'
