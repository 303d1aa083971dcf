"""Networks that grow between phases (egm/methods/growth.py) and runs opened in the phase they
were written in (egm/run/workdir.py), on the two-phase `growing_energy` (tests/growing_method.py):
at α = 0 the grown network is the old one, trained layers and their optimiser state carry
over and new ones start fresh, a run stopped in phase 2 resumes on the same trajectory and
opens and evaluates in phase 2, each phase's functions compiling once."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

import growing_config
import growing_method
from egm import open_run
from egm.evaluation import evaluate
from egm.methods import base, growth
from egm.run import trainer

X8 = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (5, 8, 8, 1)), jnp.float32)


def _trained_coarse():
  """A stage-0 network state after three Adam steps (non-zero moments)."""
  opt = optax.adam(1e-2)
  net = base.init_network(growing_method.ProgressiveEnergy(0), opt, jax.random.key(0),
                          jnp.zeros((2, 4, 4, 1)))
  for i in range(3):
    x = jax.random.normal(jax.random.key(i), (4, 4, 4, 1))
    grads = jax.grad(lambda p: jnp.sum(growing_method.ProgressiveEnergy(0).apply(
        {'params': p}, x)))(net['params'])
    net = base.apply_gradients(net, grads, opt)
  return net, opt


def test_the_grown_network_at_alpha_zero_is_the_old_one_on_the_pooled_image():
  old, opt = _trained_coarse()
  grown = growth.grow(old, growing_method.ProgressiveEnergy(1), opt, jax.random.key(1), X8)
  coarse = growing_method.ProgressiveEnergy(0).apply({'params': old['params']},
                                                     growing_method.avg_pool2(X8))
  fine = lambda alpha: growing_method.ProgressiveEnergy(1).apply(
      {'params': grown['params']}, X8, alpha)
  np.testing.assert_allclose(fine(0.0), coarse, rtol=1e-6, atol=1e-6)
  assert float(jnp.max(jnp.abs(fine(1.0) - coarse))) > 1e-3  # the new path changes E


def test_trained_layers_and_their_adam_moments_carry_over_and_new_ones_start_fresh():
  old, opt = _trained_coarse()
  grown = growth.grow(old, growing_method.ProgressiveEnergy(1), opt, jax.random.key(1), X8)
  assert sorted(growth.new_leaves(old['params'], grown['params'])) == [
      "['block_8']['bias']", "['block_8']['kernel']", "['from_rgb_8']['bias']",
      "['from_rgb_8']['kernel']"]
  for name in ('from_rgb_4', 'block_4', 'head'):
    np.testing.assert_array_equal(grown['params'][name]['kernel'], old['params'][name]['kernel'])
  adam_old, adam_new = old['opt_state'][0], grown['opt_state'][0]
  assert int(adam_new.count) == 3
  np.testing.assert_array_equal(adam_new.mu['head']['kernel'], adam_old.mu['head']['kernel'])
  assert float(jnp.abs(adam_old.mu['head']['kernel']).sum()) > 0
  assert float(jnp.abs(adam_new.mu['block_8']['kernel']).sum()) == 0  # fresh moments
  reset = growth.grow(old, growing_method.ProgressiveEnergy(1), opt, jax.random.key(1), X8,
                      reset_optimizer=True)
  assert int(reset['opt_state'][0].count) == 0


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def test_a_run_stopped_in_phase_two_resumes_opens_and_evaluates_there(tmp_path):
  growing_method.GrowingEnergy.traces.clear()
  straight = trainer.train(growing_config.get_config(), str(tmp_path / 'straight'))
  traces = growing_method.GrowingEnergy.traces
  assert {k: v for k, v in traces.items() if k[0] == 'update'} == {('update', 0): 1,
                                                                   ('update', 1): 1}
  assert ('sample', 0) not in traces  # the run's last grid: sampled in phase 2 only
  stopped = growing_config.get_config()
  stopped.train.num_steps = 8  # in the fade-in of phase 2
  trainer.train(stopped, str(tmp_path / 'resumed'))
  run = open_run(str(tmp_path / 'resumed'), load_data=False)
  assert (run.step, run.phase, run.method.phase) == (8, 1, 1)
  assert run.experiment.dataset is None
  assert run.state['energy']['params']['from_rgb_8']['kernel'].shape == (1, 8)
  energies = run.method.energy(run.state, X8)
  assert energies.shape == (5,) and bool(jnp.all(jnp.isfinite(energies)))
  resumed = trainer.train(growing_config.get_config(), str(tmp_path / 'resumed'))
  for a, b in zip(_leaves(straight), _leaves(resumed)):
    np.testing.assert_array_equal(a, b)
  growing_method.GrowingEnergy.traces.clear()
  config = growing_config.get_config()
  config.eval.metrics = 'samples'
  results = evaluate.evaluate(config, str(tmp_path / 'resumed'))
  assert results['step'] == 14
  assert growing_method.GrowingEnergy.traces.get(('sample', 1)) == 1
  assert ('sample', 0) not in growing_method.GrowingEnergy.traces
  assert (tmp_path / 'resumed' / 'eval' / 'samples.png').exists()


def _train_process(workdir, *extra):
  import os
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  return subprocess.Popen(
      [sys.executable, 'train.py', '--config', 'tests/growing_config.py', '--workdir',
       str(workdir), *extra], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True)


def test_killed_in_phase_two_it_resumes_there_and_ends_where_an_unkilled_run_ends(tmp_path):
  """SIGKILL once the run is past its phase-2 checkpoint of step 8; the rerun resumes in
  phase 2 and its final state equals an uninterrupted run's, bit for bit."""
  proc = _train_process(tmp_path / 'killed', '--config.train.num_steps=400')
  for line in proc.stdout:
    if line.startswith('step 10/'):
      proc.kill()
      break
  proc.wait(timeout=60)
  assert proc.returncode != 0
  rerun = _train_process(tmp_path / 'killed', '--config.train.num_steps=14')
  output = rerun.communicate(timeout=300)[0]
  assert rerun.returncode == 0, output
  assert 'resumed from step' in output and '(phase fine)' in output, output
  straight = _train_process(tmp_path / 'straight', '--config.train.num_steps=14')
  assert straight.wait(timeout=300) == 0
  killed, reference = (open_run(str(tmp_path / name), load_data=False)
                       for name in ('killed', 'straight'))
  assert killed.step == reference.step == 14 and killed.phase == 1
  for a, b in zip(_leaves(killed.state), _leaves(reference.state)):
    np.testing.assert_array_equal(a, b)
