"""Damaged checkpoints, failed checkpoint writes and workdirs of another run (egm/run/checkpointing.py,
egm/run/experiment.py): a corrupt newest checkpoint falls back to the previous one, a kill while
old checkpoints are removed leaves no partial one, a full or read-only disk is one clear error
with the previous checkpoint intact, and a workdir written by another config is refused naming
the keys."""
import contextlib
import errno
import json
import os
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ebm_toy2d
from egm.errors import EgmError
from egm.run import experiment
from egm.run.checkpointing import Checkpointer, CorruptCheckpointError
from orbax.checkpoint._src.path import atomicity

# A failed read leaves no unraisable exception behind (TensorStore's late callbacks are held).
pytestmark = pytest.mark.filterwarnings('error::pytest.PytestUnraisableExceptionWarning')

STATE = {'net': {'w': jnp.arange(2000.0).reshape(40, 50), 'b': jnp.ones((7,))},
         'step': jnp.zeros((), jnp.int32)}


def _at(step):
  """The state saved at `step`: STATE shifted by `step`, so each checkpoint is told apart."""
  return jax.tree.map(lambda x: x + step, STATE)


def _assert_state(state, step):
  for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(_at(step))):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _saved(workdir, steps=(1, 2, 3)):
  checkpoints = Checkpointer(str(workdir))
  for step in steps:
    checkpoints.save(step, _at(step))
  return checkpoints


def _files(directory):
  return [os.path.join(root, f) for root, _, files in os.walk(directory) for f in files]


def _truncate_all(step_dir):
  for path in _files(step_dir):
    with open(path, 'r+b') as f:
      f.truncate(os.path.getsize(path) // 2)


def _garble_data(step_dir):
  for path in _files(os.path.join(step_dir, 'default', 'd')):
    size = os.path.getsize(path)
    with open(path, 'wb') as f:
      f.write(np.random.default_rng(0).bytes(size))


def _delete_array_metadata(step_dir):
  os.remove(os.path.join(step_dir, 'default', '_METADATA'))


def _empty_manifest(step_dir):
  open(os.path.join(step_dir, 'default', 'manifest.ocdbt'), 'w').close()


@pytest.mark.parametrize('damage', [_truncate_all, _garble_data, _delete_array_metadata,
                                    _empty_manifest])
def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys, damage):
  checkpoints = _saved(tmp_path)
  damage(os.path.join(checkpoints.directory, '3'))
  state, step = checkpoints.restore_latest(lambda s: STATE, lambda: STATE)
  assert step == 2
  _assert_state(state, 2)
  out = capsys.readouterr().out
  assert f"warning: The checkpoint of step 3 ({checkpoints.directory}{os.sep}3) is corrupt" in out
  assert 'resuming from the checkpoint of step 2' in out
  assert os.path.isdir(tmp_path / 'corrupt_checkpoints' / '3')  # kept for inspection
  assert checkpoints.all_steps() == [1, 2]
  checkpoints.save(3, _at(3))  # training goes on through the step that was set aside
  checkpoints.close()
  state, step = Checkpointer(str(tmp_path)).restore_latest(lambda s: STATE, lambda: STATE)
  assert step == 3
  _assert_state(state, 3)


def test_an_intact_checkpoint_restores_without_a_warning(tmp_path, capsys):
  state, step = _saved(tmp_path).restore_latest(lambda s: STATE, lambda: STATE)
  assert step == 3 and 'warning' not in capsys.readouterr().out
  _assert_state(state, 3)


def test_no_checkpoint_gives_the_initial_state_at_step_0(tmp_path):
  state, step = Checkpointer(str(tmp_path)).restore_latest(lambda s: _at(s), lambda: _at(0))
  assert step == 0
  _assert_state(state, 0)


def test_when_no_checkpoint_reads_back_it_is_an_error_and_nothing_is_moved(tmp_path):
  checkpoints = _saved(tmp_path, steps=(1, 2))
  for step in (1, 2):
    _truncate_all(os.path.join(checkpoints.directory, str(step)))
  with pytest.raises(EgmError, match=r'None of the 2 checkpoints .* reads back: The checkpoint '
                     r'of step 2 .* Restore them from a backup, or move .* aside'):
    checkpoints.restore_latest(lambda s: STATE, lambda: STATE)
  assert checkpoints.all_steps() == [1, 2]
  assert not os.path.exists(tmp_path / 'corrupt_checkpoints')


def test_a_checkpoint_of_other_shapes_is_refused_naming_the_arrays(tmp_path):
  """The second line of defence, for a workdir without a config.json."""
  checkpoints = _saved(tmp_path, steps=(1,))
  other = dict(STATE, net={'w': jnp.zeros((40, 60)), 'b': STATE['net']['b']})
  with pytest.raises(EgmError, match=r'step 1 .* written by another config .*net/w: '
                     r'checkpoint \(40, 50\), config \(40, 60\)'):
    checkpoints.restore_latest(lambda s: other, lambda: other)
  assert checkpoints.all_steps() == [1]  # refused, not set aside as corrupt


def test_restoring_a_corrupt_step_directly_names_it(tmp_path):
  checkpoints = _saved(tmp_path, steps=(1,))
  _garble_data(os.path.join(checkpoints.directory, '1'))
  with pytest.raises(CorruptCheckpointError, match=r'checkpoint of step 1 .* is corrupt'):
    checkpoints.restore(STATE, 1)


class _Killed(BaseException):
  """Stands for a SIGKILL: nothing after it runs in the process."""


def test_a_kill_while_old_checkpoints_are_removed_leaves_only_whole_checkpoints(tmp_path,
                                                                               monkeypatch):
  """The process dies after the first file of an old checkpoint is removed (the save of step 4
  drops step 1, keep=3); the rerun lists the newest three checkpoints, each reads back, and
  nothing of step 1 is left."""
  checkpoints = _saved(tmp_path)
  real_unlink, removed = os.unlink, []

  def unlink_then_die(path, *args, **kwargs):
    if removed:
      raise _Killed
    real_unlink(path, *args, **kwargs)
    removed.append(path)

  monkeypatch.setattr(os, 'unlink', unlink_then_die)
  with pytest.raises(_Killed):
    checkpoints.save(4, _at(4))
  monkeypatch.setattr(os, 'unlink', real_unlink)
  assert removed  # the kill came in the middle of a removal
  rerun = Checkpointer(str(tmp_path))
  assert rerun.all_steps() == [2, 3, 4]
  for step in (2, 3, 4):
    _assert_state(rerun.restore(STATE, step), step)
  assert sorted(os.listdir(rerun.directory)) == ['.deleted', '2', '3', '4']
  assert os.listdir(os.path.join(rerun.directory, '.deleted')) == []


@contextlib.contextmanager
def _small_tmpfs(path, size='2m'):
  """A size-limited tmpfs at `path` (root only); skips the test where mounting is impossible."""
  os.makedirs(path)
  mount = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)],
                         capture_output=True, text=True, check=False)
  if mount.returncode != 0:
    pytest.skip(f'cannot mount a tmpfs here: {mount.stderr.strip()}')
  try:
    yield path
  finally:
    subprocess.run(['umount', '-l', str(path)], check=False)


def _fill(directory, leave_bytes=4096):
  """Fills the file system of `directory` up to `leave_bytes`; returns the filler's path."""
  stat = os.statvfs(directory)
  filler = os.path.join(directory, 'filler')
  with open(filler, 'wb') as f:
    f.write(b'\0' * max(stat.f_bavail * stat.f_frsize - leave_bytes, 0))
  return filler


def test_a_full_disk_during_a_checkpoint_write_is_a_clear_error_and_keeps_the_previous(tmp_path):
  with _small_tmpfs(tmp_path / 'disk') as disk:
    checkpoints = _saved(disk / 'run', steps=(1,))
    filler = _fill(disk)
    with pytest.raises(EgmError) as error:
      checkpoints.save(2, _at(2))
    message = str(error.value)
    assert f'Writing the checkpoint of step 2 to {checkpoints.directory} failed: the disk is ' \
           'full' in message
    assert 'free space on that disk' in message and 'checkpoint (step 1) is intact' in message
    assert 'Traceback' not in message
    checkpoints.close()
    os.remove(filler)
    reopened = Checkpointer(str(disk / 'run'))
    state, step = reopened.restore_latest(lambda s: STATE, lambda: STATE)
    assert step == 1
    _assert_state(state, 1)
    reopened.save(2, _at(2))  # the partial write of step 2 is cleaned up, not in the way
    assert reopened.all_steps() == [1, 2]
    reopened.close()


def test_a_read_only_disk_during_a_checkpoint_write_is_a_clear_error(tmp_path):
  with _small_tmpfs(tmp_path / 'disk') as disk:
    checkpoints = _saved(disk / 'run', steps=(1,))
    subprocess.run(['mount', '-o', 'remount,ro', str(disk)], check=True)
    with pytest.raises(EgmError, match=r'step 2 .* failed: the file system is read-only\. Fix: '
                       r'point --workdir at a writable disk\. .*\(step 1\) is intact'):
      checkpoints.save(2, _at(2))
    subprocess.run(['mount', '-o', 'remount,rw', str(disk)], check=True)
    checkpoints.close()
    state, step = Checkpointer(str(disk / 'run')).restore_latest(lambda s: STATE, lambda: STATE)
    assert step == 1
    _assert_state(state, 1)


def test_a_write_that_fails_with_enospc_at_the_final_rename_keeps_the_previous(tmp_path,
                                                                               monkeypatch):
  """Runs without root: orbax's own finalize (the rename of the complete temporary directory)
  raises ENOSPC, after the arrays of step 2 were written."""
  checkpoints = _saved(tmp_path, steps=(1,))

  async def full(self, *args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.get()))

  monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, 'finalize', full)
  with pytest.raises(EgmError, match=r'step 2 .* failed: the disk is full\. .*\(step 1\) is '
                     r'intact: rerun the same command'):
    checkpoints.save(2, _at(2))
  monkeypatch.undo()
  assert checkpoints.all_steps() == [1]
  checkpoints.close()
  state, step = Checkpointer(str(tmp_path)).restore_latest(lambda s: STATE, lambda: STATE)
  assert step == 1
  _assert_state(state, 1)


def _with_checkpoint(workdir, config):
  """`workdir` as a run of `config` that saved a checkpoint (its config.json and a step dir)."""
  experiment.write_config(config, str(workdir))
  os.makedirs(workdir / 'checkpoints' / '5')


def test_a_workdir_of_another_config_is_refused_naming_the_keys(tmp_path):
  config = ebm_toy2d.get_config('smoke')
  _with_checkpoint(tmp_path, config)
  written = (tmp_path / 'config.json').read_text()
  other = ebm_toy2d.get_config('smoke')
  other.model.width, other.method, other.data.source = 16, 'coopnets', 'toy2d:rings'
  with pytest.raises(EgmError) as error:
    experiment.write_config(other, str(tmp_path))
  message = str(error.value)
  assert f'--workdir={tmp_path} holds the checkpoints of a run with another config' in message
  for difference in ("data.source: run 'toy2d:8gaussians', now 'toy2d:rings'",
                     "method: run 'ebm', now 'coopnets'", 'model.width: run 8, now 16'):
    assert difference in message
  assert 'train.num_steps' in message  # the keys that may change are listed
  assert (tmp_path / 'config.json').read_text() == written  # not overwritten


def test_keys_that_may_change_between_runs_of_a_workdir_are_accepted(tmp_path):
  config = ebm_toy2d.get_config('smoke')
  _with_checkpoint(tmp_path, config)
  longer = ebm_toy2d.get_config('smoke')
  longer.train.num_steps, longer.train.checkpoint_every, longer.train.log_every = 50, 7, 1
  longer.train.max_minutes, longer.data.prefetch, longer.eval.num_samples = 3.0, 0, 9
  longer.guard.policy, longer.guard.max_rollbacks = 'rollback', 5
  experiment.write_config(longer, str(tmp_path))
  assert json.loads((tmp_path / 'config.json').read_text())['train']['num_steps'] == 50
  assert not experiment.config_differences(json.loads((tmp_path / 'config.json').read_text()),
                                           longer)


def test_a_workdir_without_checkpoints_takes_the_new_config(tmp_path):
  experiment.write_config(ebm_toy2d.get_config('smoke'), str(tmp_path))
  other = ebm_toy2d.get_config('smoke')
  other.model.width = 16
  experiment.write_config(other, str(tmp_path))  # nothing trained there to mix with
  assert json.loads((tmp_path / 'config.json').read_text())['model']['width'] == 16


def test_a_saved_config_lacking_newer_keys_compares_with_their_defaults(tmp_path):
  config = ebm_toy2d.get_config('smoke')
  saved = json.loads(json.dumps(config.to_dict()))
  del saved['eval']['metrics'], saved['model']['energy_dtype']  # keys added after the run
  assert experiment.config_differences(saved, config) == []
  config.model.energy_dtype = 'bfloat16'
  assert experiment.config_differences(saved, config) == [
      "model.energy_dtype: run 'float32', now 'bfloat16'"]


def _assert_unwritable(workdir, cause):
  with pytest.raises(EgmError, match=f'Cannot write to --workdir={workdir}: {cause}'):
    experiment.write_config(ebm_toy2d.get_config('smoke'), str(workdir))
  with pytest.raises(EgmError, match=f'Cannot create the checkpoint directory .*: {cause}'):
    Checkpointer(str(workdir))


def test_a_workdir_under_a_file_is_a_clear_error(tmp_path):
  (tmp_path / 'file').write_text('')
  _assert_unwritable(tmp_path / 'file' / 'run', 'a part of the path is a file')


def test_a_workdir_on_a_read_only_disk_is_a_clear_error(tmp_path):
  with _small_tmpfs(tmp_path / 'disk') as disk:
    subprocess.run(['mount', '-o', 'remount,ro', str(disk)], check=True)
    _assert_unwritable(disk / 'run', 'the file system is read-only')


def test_a_garbled_config_json_of_a_checkpointed_run_is_a_clear_error(tmp_path):
  _with_checkpoint(tmp_path, ebm_toy2d.get_config('smoke'))
  (tmp_path / 'config.json').write_text('{"method": "eb')
  with pytest.raises(EgmError, match=r'config.json is not valid JSON .* Restore the file'):
    experiment.write_config(ebm_toy2d.get_config('smoke'), str(tmp_path))
