"""The learned step's rank among fixed steps in studies.srinf_step_grid's table."""
import chex
import jax
import numpy as np
import pytest

from egm.run import experiment
from studies import srinf_step_grid


def _row(run, learned, mse, refit=1.0):
  return {'run': run, 'learned': learned, 'final_step_size': 0.1, 'test_rec_mse': mse,
          'test_bound': 1.0, 'test_bound_refit': refit}


def test_each_learned_run_is_ranked_among_the_fixed_runs_only(tmp_path):
  rows = [_row('learned from 0.05', True, 0.12), _row('learned from 0.2', True, 0.064)]
  rows += [_row(f'fixed {d}', False, m) for d, m in ((0.05, 0.22), (0.1, 0.11), (0.2, 0.062))]
  assert srinf_step_grid.learned_ranks(rows) == {'learned from 0.05': 3, 'learned from 0.2': 2}
  table = srinf_step_grid.write_table(rows, str(tmp_path))
  body = [line for line in table.splitlines() if line.startswith('| ') and 'δ' not in line]
  assert [line.split(' | ')[0][2:] for line in body] == [
      'fixed 0.2', 'learned from 0.2', 'fixed 0.1', 'learned from 0.05', 'fixed 0.05']
  assert 'learned from 0.05 ranks 3 of 4 beside the 3 fixed steps by test rec MSE' in table
  assert (tmp_path / 'grid.json').exists() and (tmp_path / 'grid.md').read_text() == table + '\n'


def test_a_grid_of_fewer_than_five_steps_is_refused(capsys):
  with pytest.raises(SystemExit):
    srinf_step_grid.parse_args(['--grid', '0.05,0.1,0.2,0.4'])
  assert 'at least five' in capsys.readouterr().err
  args = srinf_step_grid.parse_args(['--grid', '0.01,0.02,0.05,0.1,0.2', '--set', 'smoke'])
  config = srinf_step_grid.run_config(args, 0.07, learned=False)
  assert (config.srinf.step_size, config.srinf.learn_step_size) == (0.07, False)
  assert config.srinf.step_size_every == 1 and config.train.num_steps == args.updates


@pytest.mark.integration
def test_refitting_the_reverse_kernel_tightens_the_bound_and_keeps_the_model():
  """The refit descends the bound in (a, b, log c) only: θ and δ are untouched, B drops."""
  args = srinf_step_grid.parse_args(['--set', 'smoke,data.image_size=8', '--data_source',
                                     'sklearn:digits', '--reverse_fit_updates', '30',
                                     '--reverse_fit_lr', '0.05'])
  config = srinf_step_grid.run_config(args, 0.05, learned=False)
  exp = experiment.build(config)
  state = exp.init_state()
  x = exp.dataset.train.get(np.arange(64))['x']
  refit = srinf_step_grid.refit_reverse_kernel(exp.method, state, x, args, jax.random.key(0))
  before = srinf_step_grid.score(exp.method, state, x, jax.random.key(1))['test_bound']
  after = srinf_step_grid.score(exp.method, refit, x, jax.random.key(1))['test_bound']
  print(f'bound before {before:.2f}, after refit {after:.2f} nats')
  assert after < before - 1.0
  chex.assert_trees_all_equal(refit['generator'], state['generator'])
  chex.assert_trees_all_equal(refit['step_size']['params']['log_delta'],
                              state['step_size']['params']['log_delta'])
