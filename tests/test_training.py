"""End-to-end: the trainer's workdir, exact resume, 1 vs 8 devices, the NaN guard."""
import json
import os

import jax
import numpy as np
import pytest

from configs import triangle_digits, triangle_toy2d
from egm.errors import EgmError
from egm.evaluation import evaluate
from egm.run import experiment, parallel, trainer
from egm.run import workdir
from egm.run.metric_writer import NonFiniteLossError


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def test_workdir_layout(tmp_path, capsys):
  config = triangle_toy2d.get_config('smoke')
  trainer.train(config, str(tmp_path))
  results = evaluate.evaluate(config, str(tmp_path))
  assert json.load(open(tmp_path / 'eval' / 'metrics.json')) == results
  assert results['step'] == 6 and results['dataset'] == '8gaussians'
  for name in ('density_tv', 'density_kl', 'sample_tv', 'sample_tv_floor', 'rec_mse'):
    assert np.isfinite(results[name]), name
  assert 0 <= results['density_tv'] <= 1 and 0 <= results['sample_tv'] <= 1
  assert {'density.png', 'true_density.png'} <= set(os.listdir(tmp_path / 'eval'))
  config.eval.checkpoint_step = 3
  earlier = evaluate.evaluate(config, str(tmp_path))
  assert earlier['step'] == 3 and earlier['density_tv'] != results['density_tv']
  config.eval.checkpoint_step = 4
  with pytest.raises(EgmError, match=r'checkpoint_step=4.*holds steps \[3, 6\]'):
    evaluate.evaluate(config, str(tmp_path))
  config.eval.checkpoint_step = 0
  config.model.sigma = 0.5
  workdir.warn_if_config_differs(config, str(tmp_path))
  assert 'model.sigma: trained 0.1, now 0.5' in capsys.readouterr().out
  assert json.load(open(tmp_path / 'config.json'))['method'] == 'triangle'
  lines = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert [l['step'] for l in lines] == [2, 4, 6]
  assert all(np.isfinite(l['loss']) for l in lines)
  assert sorted(os.listdir(tmp_path / 'samples')) == ['step_00000003.png', 'step_00000006.png']
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3', '6']
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(tmp_path / 'tensorboard'))


@pytest.mark.parametrize('method', ['triangle', 'vae'])
def test_resume_continues_the_same_trajectory(tmp_path, method):
  """Stopping after N steps and resuming gives the parameters of an uninterrupted 2N-step run."""
  def config(steps):
    c = triangle_digits.get_config('smoke')
    c.method = method
    c.data.mask = 'pixels:0.3'
    c.data.dequantize = 0.01
    c.train.num_steps = steps
    c.train.checkpoint_every = 100
    return c
  straight = trainer.train(config(6), str(tmp_path / 'straight'))
  trainer.train(config(3), str(tmp_path / 'resumed'))
  resumed = trainer.train(config(6), str(tmp_path / 'resumed'))
  for a, b in zip(_leaves(straight), _leaves(resumed), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert int(resumed['step']) == 6


def test_one_and_eight_devices_give_the_same_update():
  """Same global batch and key: the sharded update step matches the single-device one."""
  assert jax.device_count() == 8
  config = triangle_digits.get_config('smoke')
  config.train.batch_size = 32
  exp = experiment.build(config)
  batch = exp.dataset.train.get(np.arange(32))
  key = jax.random.key(3)
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.make_mesh(devices)
    exp.mesh = mesh
    state = exp.init_state()
    update = jax.jit(exp.method.update, in_shardings=(
        parallel.replicated(mesh), parallel.data_sharding(mesh), parallel.replicated(mesh)))
    history = []
    for step in range(3):
      state, metrics = update(state, parallel.global_batch(batch, mesh), jax.random.fold_in(key, step))
      history.append(jax.device_get(metrics))
    results.append((history, _leaves(state)))
  (m1, s1), (m8, s8) = results
  for step, (a, b) in enumerate(zip(m1, m8)):
    for name in a:
      np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-5, err_msg=f'{name}@{step}')
  for a, b in zip(s1, s8, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-5)


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
  np.savez(tmp_path / 'huge.npz', x=np.full((64, 2), 1e30, np.float32))
  config = triangle_toy2d.get_config('smoke')
  config.data.source = f'npz:{tmp_path / "huge.npz"}'
  with pytest.raises(NonFiniteLossError, match='Non-finite value of .* at step 2'):
    trainer.train(config, str(tmp_path / 'run'))


def test_batch_not_divisible_by_devices():
  config = triangle_toy2d.get_config('smoke')
  config.train.batch_size = 12
  with pytest.raises(EgmError, match='does not divide by the 8 devices.*multiple of 8'):
    experiment.build(config)


def test_unknown_method():
  config = triangle_toy2d.get_config('smoke')
  config.method = 'trinagle'
  with pytest.raises(EgmError, match=r"Unknown method 'trinagle'.*'triangle'"):
    experiment.build(config)
