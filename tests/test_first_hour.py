"""What a new user meets in the first hour: a refused run leaves no workdir, eval.py on a
missing workdir says so, the ETA of a time-budgeted run respects the budget and its stop
writes a sample grid, the completion mask fits small images and its message names its key."""
import os
import time

import pytest

from configs import triangle_digits
from egm import cli
from egm.data import masks
from egm.errors import EgmError
from egm.run import trainer
from egm.run.metric_writer import MetricWriter


def test_a_config_error_leaves_no_workdir_and_an_unwritable_one_is_refused(tmp_path):
  config = triangle_digits.get_config('smoke')
  config.train.num_steps = -1
  with pytest.raises(EgmError, match='num_steps is -1'):
    cli.check_run(config, str(tmp_path / 'new' / 'run'))
  assert not os.path.exists(tmp_path / 'new')
  cli.check_run(triangle_digits.get_config('smoke'), str(tmp_path / 'new' / 'run'))
  assert not os.path.exists(tmp_path / 'new')  # created only once the data has loaded
  (tmp_path / 'file').write_text('')
  with pytest.raises(EgmError, match='cannot be written'):
    cli.check_run(triangle_digits.get_config('smoke'), str(tmp_path / 'file' / 'run'))


def test_eval_on_a_missing_workdir_says_it_does_not_exist(tmp_path):
  with pytest.raises(EgmError, match=r'does not exist: train a run there first'):
    cli.check_trained_workdir(str(tmp_path / 'nothing'))
  with pytest.raises(EgmError, match='--workdir is missing'):
    cli.check_trained_workdir(None)


def test_the_eta_of_a_budgeted_run_ends_with_the_budget(tmp_path):
  now = time.time()
  writer = MetricWriter(str(tmp_path), total_steps=10_000, enabled=False, ends_at=now + 120)
  assert writer._eta(100, 10.0, now) == '  eta 0h02m00s (train.max_minutes; about step 1300)'
  assert writer._eta(9_900, 10.0, now) == '  eta 0h00m10s'  # the steps end first
  assert MetricWriter(str(tmp_path), 10_000, enabled=False)._eta(0, 10.0, now) == (
      '  eta 0h16m40s')


def test_a_budgeted_stop_writes_the_last_sample_grid(tmp_path):
  config = triangle_digits.get_config('smoke')
  config.train.num_steps, config.train.sample_every = 1000, 1000
  config.train.max_minutes = 1e-4  # stops after the first update
  trainer.train(config, str(tmp_path))
  grids = sorted(os.listdir(tmp_path / 'samples'))
  assert len(grids) == 1 and grids[0].startswith('step_') and grids[0] != 'step_00001000.png'


def test_the_completion_mask_fits_small_images_and_names_its_key():
  assert masks.half_block(8, 8) == 'block:4' and masks.half_block(28, 28) == 'block:14'
  with pytest.raises(EgmError, match=r"config.eval.completion_mask.*\(e.g. block:4\)"):
    masks.parse_mask('block:14', 8, 8, key='eval.completion_mask')
