"""Kills and preemption of real training processes: SIGKILL at random moments (a few of the
kills of benchmarks/kill.py) and SIGTERM in the middle of a phase of a method with per-example
state, each followed by a rerun that continues the same trajectory."""
import os
import signal
import subprocess
import sys

import jax
import numpy as np

import phased_per_example_config
from benchmarks import kill
from egm.run import trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sigkill_at_random_moments_resumes_from_the_newest_intact_checkpoint(tmp_path):
  attempts, num_steps = kill.campaign(str(tmp_path), kills=3, window=1.5, seed=3,
                                      config='configs/ebm_toy2d.py:smoke', extra_steps=3,
                                      delay_from_first_update=True)
  rows = kill.kill_rows(attempts)
  assert len(rows) == 3 and all(a.returncode == -signal.SIGKILL for a in attempts[:-1])
  for row in rows:
    assert row['resumed_newest'], row  # the rerun resumed from the newest checkpoint...
    assert row['unreadable'] == (), row  # ...and every checkpoint read back
    assert 0 <= row['lost'] <= 1, row  # a checkpoint after every step: at most one lost
  assert not any(a.fell_back for a in attempts)
  final = attempts[-1]
  assert final.returncode == 0 and final.reached == num_steps, final.output[-2000:]
  assert final.newest_after == num_steps


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def test_sigterm_mid_phase_with_per_example_state_resumes_on_the_same_trajectory(tmp_path):
  """train.py is stopped by SIGTERM inside the first of two phases; the rerun (in this process)
  crosses into the second phase and ends on the state of an uninterrupted run, bit for bit."""
  config_file = os.path.join(REPO, 'tests', 'phased_per_example_config.py')
  workdir = str(tmp_path / 'stopped')
  proc = subprocess.Popen(
      [sys.executable, 'train.py', '--config', config_file, '--workdir', workdir],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # 8 devices, as here
  for line in proc.stdout:
    if ': the first update compiled' in line:
      break
  proc.send_signal(signal.SIGTERM)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == 0 and 'signal 15: saving a checkpoint and stopping' in out, out
  saved = [int(d) for d in os.listdir(os.path.join(workdir, 'checkpoints')) if d.isdigit()]
  first_phase = phased_per_example_config.FIRST_PHASE_STEPS
  assert len(saved) == 1 and 0 < saved[0] < first_phase, saved  # inside the first phase

  config = phased_per_example_config.get_config()
  resumed = trainer.train(config, workdir)
  straight = trainer.train(config, str(tmp_path / 'straight'))
  assert int(straight['step']) == config.train.num_steps > first_phase
  assert np.asarray(straight['per_example']['count']).sum() > 0
  for a, b in zip(_leaves(straight), _leaves(resumed), strict=True):
    np.testing.assert_array_equal(a, b)
