"""Orbax checkpoints of the whole train state: written atomically, restored on start from the
newest one that reads back, and failed writes (disk full, read-only) reported in one sentence."""
import contextlib
import gc
import logging
import os
import shutil
import sys
import time

import jax
import orbax.checkpoint as ocp

from egm.errors import EgmError, first_few
from egm.run import write_errors

CORRUPT_DIR = 'corrupt_checkpoints'  # under the workdir: checkpoints that did not read back
DELETED_DIR = '.deleted'  # under the checkpoint directory: old checkpoints being removed


class CorruptCheckpointError(EgmError):
  """A checkpoint directory that exists but does not read back (truncated, deleted or garbled
  files)."""


class Checkpointer:
  """Saves the state pytree under `<workdir>/checkpoints/<step>`; keeps the newest `keep`.

  Orbax writes each checkpoint to `<step>.orbax-checkpoint-tmp` and renames it when complete,
  so a save killed at any moment leaves the earlier checkpoints as they were; the partial
  directory is removed when the next Checkpointer opens the workdir. Checkpoints beyond the
  newest `keep` are first renamed into `checkpoints/.deleted/` and only then removed, so a
  kill during the removal never leaves a half-deleted step directory among the checkpoints;
  what a kill leaves in `.deleted` is removed on the next save or open. Saves are synchronous:
  the loop waits for each one anyway, and orbax's asynchronous path leaves its threads
  waiting minutes at exit after a failed write.
  """

  def __init__(self, workdir: str, keep: int = 3):
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, 'checkpoints')
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           cleanup_tmp_directories=True,
                                           todelete_subdir=DELETED_DIR,
                                           enable_async_checkpointing=False)
    try:
      self.manager = ocp.CheckpointManager(self.directory, options=options,
                                           item_handlers=ocp.StandardCheckpointHandler())
    except OSError as e:
      cause, fix = write_errors.cause_and_fix(e)
      raise EgmError(f'Cannot create the checkpoint directory {self.directory}: {cause} '
                     f'({e}). Fix: {fix}.') from e
    self._empty_deleted()

  def latest_step(self):
    """The newest complete checkpoint's step, or None."""
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    """The steps of the complete checkpoints, oldest first."""
    return sorted(self.manager.all_steps())

  def save(self, step: int, state) -> None:
    """Writes `state` at `step` (blocks until it is on disk); a failed write raises EgmError
    naming the cause and the fix, and leaves the earlier checkpoints restorable."""
    try:
      with _orbax_errors_held():
        self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self.manager.wait_until_finished()
      self._empty_deleted()
    except (EgmError, MemoryError):
      raise
    except Exception as e:  # orbax and TensorStore raise ValueError, OSError or Exception
      cause, fix = write_errors.cause_and_fix(e)
      newest = self.latest_step()
      kept = (f'The newest complete checkpoint (step {newest}) is intact: rerun the same '
              'command to resume from it.' if newest is not None else
              'There is no earlier checkpoint: a rerun starts at step 0.')
      raise EgmError(f'Writing the checkpoint of step {step} to {self.directory} failed: '
                     f'{cause}. Fix: {fix}. {kept}') from e

  def check_compatible(self, template, step: int) -> None:
    """Raises EgmError naming the arrays whose presence or shape differ between the
    checkpoint of `step` and `template` (a workdir written by another config), and
    CorruptCheckpointError when the checkpoint's metadata does not read back."""
    def shapes(tree):
      return {'/'.join(str(getattr(k, 'key', getattr(k, 'idx', getattr(k, 'name', k))))
                       for k in path): tuple(getattr(leaf, 'shape', ()))
              for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
    try:
      with _orbax_errors_held():
        metadata = self.manager.item_metadata(step)
      saved = shapes(getattr(metadata, 'tree', metadata))
    except (EgmError, MemoryError):
      raise
    except Exception as e:  # JSON, Unicode or TensorStore errors from a damaged file
      raise self._corrupt(step, e) from e
    if not saved:
      raise self._corrupt(step, 'it lists no arrays (its metadata file is missing)')
    wanted = shapes(template)
    differences = [f'{name}: checkpoint {saved.get(name, "absent")}, config '
                   f'{wanted.get(name, "absent")}'
                   for name in sorted(set(saved) | set(wanted))
                   if saved.get(name) != wanted.get(name)]
    if differences:
      shown = first_few(differences, 6)
      raise EgmError(
          f'The checkpoint of step {step} in {self.directory} was written by another config '
          f'(method, network sizes, latent shapes or the number of training examples differ): '
          f'{shown}. Train in a new --workdir, or use the config the run was trained with '
          '(its config.json).')

  def restore(self, template, step=None):
    """Restores into the structure, shapes and shardings of `template` (a state pytree);
    raises CorruptCheckpointError when the checkpoint of `step` does not read back."""
    step = self.latest_step() if step is None else step
    self.check_compatible(template, step)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    try:
      with _orbax_errors_held():
        return jax.block_until_ready(
            self.manager.restore(step, args=ocp.args.StandardRestore(abstract)))
    except (EgmError, MemoryError):
      raise
    except Exception as e:  # TensorStore DATA_LOSS / NOT_FOUND / OUT_OF_RANGE, ...
      raise self._corrupt(step, e) from e

  def restore_latest(self, template_at, initial):
    """(state, step) of the newest checkpoint that reads back, or (`initial()`, 0).

    `template_at(step)` is the state template (arrays or abstract `jax.ShapeDtypeStruct`s
    with shardings) a checkpoint of `step` restores into. Newer
    checkpoints that do not read back are moved to `<workdir>/corrupt_checkpoints/` with a
    printed warning; when none reads back, raises EgmError and moves nothing.
    """
    bad = []
    for step in reversed(self.all_steps()):
      try:
        state = self.restore(template_at(step), step)
      except CorruptCheckpointError as e:
        bad.append((step, e))
        continue
      for bad_step, error in bad:
        moved = self._set_aside(bad_step)
        print(f'warning: {error} Moved it to {moved}; resuming from the checkpoint of step '
              f'{step} instead.', flush=True)
      return state, step
    if bad:
      details = ' '.join(str(e) for _, e in bad)
      raise EgmError(
          f'None of the {len(bad)} checkpoints in {self.directory} reads back: {details} '
          f'Restore them from a backup, or move {self.directory} aside to train from step 0 '
          'in this workdir (or train in a new --workdir).')
    return initial(), 0

  def _corrupt(self, step: int, error) -> CorruptCheckpointError:
    text = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    text = text.split('. See full TensorStore details')[0][:300]
    return CorruptCheckpointError(
        f'The checkpoint of step {step} ({os.path.join(self.directory, str(step))}) is corrupt '
        f'or truncated: {text}.')

  def _set_aside(self, step: int) -> str:
    """Moves the checkpoint of `step` out of the manager's directory (process 0 moves; every
    process waits for it); returns where it went."""
    target, n = os.path.join(self.workdir, CORRUPT_DIR, str(step)), 1
    while os.path.exists(target):  # one set aside at this step before: keep both
      target, n = os.path.join(self.workdir, CORRUPT_DIR, f'{step}.{n}'), n + 1
    if jax.process_index() == 0:
      os.makedirs(os.path.dirname(target), exist_ok=True)
      os.replace(os.path.join(self.directory, str(step)), target)
    ocp.multihost.sync_global_processes(f'egm_set_aside_checkpoint_{step}')
    self.manager.reload()
    return target

  def delete_after(self, step: int) -> list[int]:
    """Deletes the checkpoints newer than `step` (states the divergence guard could not vouch
    for); returns their steps."""
    newer = [s for s in self.all_steps() if s > step]
    for s in newer:
      self.manager.delete(s)
    self._empty_deleted()
    return newer

  def _empty_deleted(self) -> None:
    """Removes the checkpoints renamed into `.deleted` (process 0; others have nothing to do).
    The folder itself stays: a training run may be renaming into it while an evaluation of
    the same workdir opens it."""
    if jax.process_index() != 0:
      return
    try:
      entries = list(os.scandir(os.path.join(self.directory, DELETED_DIR)))
    except FileNotFoundError:
      return
    for entry in entries:
      shutil.rmtree(entry.path, ignore_errors=True)

  def close(self) -> None:
    self.manager.close()


class _HeldErrors(logging.Filter):
  """Holds back ERROR records logged by orbax (with their tracebacks)."""

  def __init__(self):
    super().__init__()
    self.held = []

  def filter(self, record):
    if record.levelno >= logging.ERROR and f'{os.sep}orbax{os.sep}' in record.pathname:
      self.held.append(record)
      return False
    return True


# After a failed read, TensorStore's reads still in flight complete on its own threads and
# try to wake orbax's event loop, closed by then; this long they get to do it while held.
_LATE_CALLBACKS_S = 0.2


def _abandoned_read(unraisable) -> bool:
  """Whether an unraisable exception is one a failed orbax read leaves behind: an abandoned
  orbax coroutine, or a TensorStore callback waking the closed event loop."""
  code = getattr(unraisable.object, 'cr_code', None)
  if code is not None and f'{os.sep}orbax{os.sep}' in code.co_filename:
    return True
  exc = unraisable.exc_value
  return isinstance(exc, RuntimeError) and str(exc) == 'Event loop is closed'


@contextlib.contextmanager
def _orbax_errors_held():
  """Within, orbax's error logs and the exceptions its abandoned reads leave behind are held
  back: a failed save or restore becomes one EgmError, and after one that succeeds the held
  log records are logged as usual."""
  logger, held = logging.getLogger('absl'), _HeldErrors()
  previous_hook = sys.unraisablehook

  def hook(unraisable):
    if not _abandoned_read(unraisable):
      previous_hook(unraisable)

  logger.addFilter(held)
  sys.unraisablehook = hook
  try:
    yield
  except BaseException:
    time.sleep(_LATE_CALLBACKS_S)
    gc.collect()  # the abandoned coroutines of a failed read report here, to the hook
    raise
  finally:
    sys.unraisablehook = previous_hook
    logger.removeFilter(held)
  for record in held.held:
    logger.handle(record)
