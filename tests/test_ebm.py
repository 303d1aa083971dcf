"""The `ebm` method: chains at the training temperature, the buffer, the objective, clamping."""
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ebm_cifar, ebm_cifar_convergent, ebm_fashion, ebm_toy2d
from egm.errors import EgmError
from egm.methods import DataSpec, base, make_method
from egm.methods.contract import has_capability
from egm.run import parallel, trainer
from egm.sampling import langevin

MU = np.array([1.0, -0.5])
SIGMA = np.array([[1.0, 0.6], [0.6, 0.5]])  # eigenvalues 1.4, 0.1
PRECISION = np.linalg.inv(SIGMA)


def _method(**ebm):
  config = ebm_toy2d.get_config('smoke')
  config.ebm.update(ebm)
  return make_method(config, DataSpec.of((2,), global_batch=config.train.batch_size)), config


def _gaussian(method):
  """Replaces the network by E(x) = (x − μ)ᵀΣ⁻¹(x − μ)/2, so exp(−E/T) is N(μ, T·Σ)."""
  def energy(state, x):
    centred = x - MU.astype(np.float32)
    return 0.5 * jnp.sum((centred @ PRECISION.astype(np.float32)) * centred, -1)
  method.energy = energy
  return method


def _cov_errors(x, cov):
  """Max |sample covariance − cov| of (N, D) draws, in standard errors of N draws of N(·, cov)."""
  x = np.asarray(x, np.float64)
  se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) / len(x))
  return np.max(np.abs(np.cov(x, rowvar=False) - cov) / se)


def _image_method(config, **ebm):
  config.ebm.update(ebm)
  return make_method(config, DataSpec.of((28, 28, 1), global_batch=config.train.batch_size))


def test_mh_long_run_samples_exp_minus_energy_at_the_training_temperature():
  """Training chains x ← x − s·∇E + σ·ε have T = σ²/(2s); on a Gaussian energy the MH chain
  (proposing the training step) has covariance T·Σ exactly, and the unadjusted chain at a
  small step matches it too (its exact discretised law is within 1% of T·Σ)."""
  t, n = 0.25, 20_000
  x0 = jnp.broadcast_to(jnp.asarray(MU, jnp.float32), (n, 2))
  s = 0.05  # s·λ_max = 0.5: the unadjusted chain is ~30% off T·Σ here
  method = _gaussian(_method(step_size=s, noise_scale=np.sqrt(2 * s * t))[0])
  assert method.temperature == pytest.approx(t)
  x, info = jax.jit(lambda k: method.run_chains({}, x0, k, 500, metropolis=True))(
      jax.random.key(0))
  acceptance = float(np.mean(info.acceptance_rate[-100:]))
  print(f'MH at the training step {s}: acceptance {acceptance:.3f}, '
        f'cov error {_cov_errors(x, t * SIGMA):.2f} se')
  assert _cov_errors(x, t * SIGMA) < 5 and acceptance > 0.5
  assert np.max(np.abs(np.mean(np.asarray(x), 0) - MU)) < 0.02

  s = 0.002
  method = _gaussian(_method(step_size=s, noise_scale=np.sqrt(2 * s * t))[0])
  x, _ = jax.jit(lambda k: method.run_chains({}, x0, k, 3_000))(jax.random.key(1))
  print(f'unadjusted at step {s}: cov error {_cov_errors(x, t * SIGMA):.2f} se')
  assert _cov_errors(x, t * SIGMA) < 5


def test_mh_step_adapted_on_a_pilot_run_reaches_the_target_acceptance():
  """A step far too large for MH (acceptance ~0) is adapted to ~0.57, and the chain still
  samples N(μ, T·Σ)."""
  t, n = 0.25, 20_000
  method = _gaussian(_method(step_size=0.05, noise_scale=np.sqrt(0.1 * t), n_steps=200,
                             mh_step_size=20.0, mh_target_acceptance=0.57)[0])
  x0 = jnp.broadcast_to(jnp.asarray(MU, jnp.float32), (n, 2))
  fixed = _gaussian(_method(step_size=0.05, noise_scale=np.sqrt(0.1 * t), mh_step_size=20.0)[0])
  _, info = jax.jit(lambda k: fixed.run_chains({}, x0, k, 50, metropolis=True))(jax.random.key(2))
  assert float(np.mean(info.acceptance_rate)) < 0.05
  x, info = jax.jit(lambda k: method.run_chains({}, x0, k, 500, metropolis=True))(
      jax.random.key(2))
  acceptance = float(np.mean(info.acceptance_rate[-100:]))
  print(f'adapted MH step: acceptance {acceptance:.3f}')
  assert 0.4 < acceptance < 0.75
  assert _cov_errors(x, t * SIGMA) < 5


def test_mh_chains_need_a_temperature():
  method = _gaussian(_method(noise_scale=0.0)[0])
  with pytest.raises(EgmError, match='temperature'):
    method.long_run({}, jax.random.key(0), 4, 3, True)


@pytest.mark.parametrize('persistent, energy_l2', [(False, 0.0), (True, 0.1)])
def test_update_gradient_is_the_ml_gradient_with_constant_negatives(monkeypatch, persistent,
                                                                    energy_l2):
  """The update applies mean ∇θE(data) − mean ∇θE(negatives) (+ the energy_l2 term), with the
  negatives reproduced here from the same keys and held fixed. A flipped sign, or gradients
  through the chain (measurably different here), would fail it."""
  method, config = _method(persistent=persistent, buffer_size=64, energy_l2=energy_l2,
                           n_steps=4, step_size=0.1, noise_scale=0.3, data_noise=0.1)
  hp = config.ebm
  batch = {'x': jax.random.normal(jax.random.key(0), (16, 2))}
  state = jax.jit(method.init)(jax.random.key(1), batch)
  monkeypatch.setattr(base, 'apply_gradients', lambda net, grads, *_: dict(net, grads=grads))
  key = jax.random.key(2)
  applied = jax.jit(method.update)(state, batch, key)[0]['energy']['grads']

  k_init, k_chain, k_data = jax.random.split(key, 3)
  x_data = batch['x'] + hp.data_noise * jax.random.normal(k_data, (16, 2))
  x0, _ = method._initial_chains(state, k_init, 16)
  params = state['energy']['params']
  energy = lambda p, x: method.nets.energy.apply({'params': p}, x)
  chain = lambda p: langevin(lambda x: energy(p, x), x0, k_chain, n_steps=hp.n_steps,
                             step_size=hp.step_size, noise_scale=hp.noise_scale)[0]

  def objective(p, x_neg):
    e_data, e_neg = energy(p, x_data), energy(p, x_neg)
    l2 = jnp.mean(jnp.square(jnp.concatenate([e_data, e_neg])))
    return jnp.mean(e_data) - jnp.mean(e_neg) + energy_l2 * l2

  expected = jax.jit(lambda p: jax.grad(objective)(p, chain(p)))(params)
  chex.assert_trees_all_close(applied, expected, rtol=1e-4, atol=1e-6)
  through_chain = jax.jit(jax.grad(lambda p: objective(p, chain(p))))(params)
  difference = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), through_chain, expected)
  assert max(jax.tree.leaves(difference)) > 1e-3


def test_persistent_buffer_rows_are_replaced_by_the_chains():
  method, config = _method(persistent=True, buffer_size=64, rejuvenation=0.0, n_steps=3)
  batch = {'x': jnp.zeros((16, 2))}
  state = method.init(jax.random.key(0), batch)
  buffer = state['per_example']['buffer']
  assert buffer.shape == (64, 2)
  new_state, metrics = jax.jit(method.update)(state, batch, jax.random.key(1))
  changed = np.any(np.asarray(new_state['per_example']['buffer'] != buffer), axis=1)
  assert changed.sum() == 16  # exactly the rows drawn for the batch
  assert all(np.isfinite(float(v)) for v in metrics.values())


def _persistent_update(devices):
  """One update of a persistent EBM (buffer_size 40, batch 16) jitted over `devices`."""
  method, _ = _method(persistent=True, buffer_size=40, n_steps=3)
  mesh = parallel.make_mesh(devices)
  batch = {'x': jax.random.normal(jax.random.key(0), (16, 2))}
  shapes = jax.eval_shape(method.init, jax.random.key(1), batch)
  shardings = parallel.state_shardings(shapes, mesh)
  state = jax.jit(method.init, out_shardings=shardings)(jax.random.key(1), batch)
  update = trainer.jit_update(method.update, mesh, shardings)
  return update(state, parallel.global_batch(batch, mesh), jax.random.key(2))[0]


def test_buffer_is_per_example_state_rounded_up_to_the_global_batch():
  """40 chains at batch 16 become 48 rows, sharded on `data` over 8 devices; the update gives
  the same numbers on 1 device."""
  eight = _persistent_update(jax.devices())
  buffer = eight['per_example']['buffer']
  assert buffer.shape == (48, 2)
  assert buffer.sharding.spec == jax.sharding.PartitionSpec(parallel.DATA_AXIS)
  assert len({s.device for s in buffer.addressable_shards}) == len(jax.devices())
  one = _persistent_update(jax.devices()[:1])
  for a, b in zip(jax.tree.leaves(eight), jax.tree.leaves(one)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_rejuvenation_fraction():
  method, _ = _method(persistent=True, buffer_size=20_000, rejuvenation=0.25)
  state = {'per_example': {'buffer': jnp.full((20_000, 2), 100.0)}}  # outside the noise range
  x0, rows = method._initial_chains(state, jax.random.key(2), 10_000)
  fresh = np.mean(np.abs(np.asarray(x0)) < 50)
  assert len(np.unique(np.asarray(rows))) == 10_000
  assert abs(fresh - 0.25) < 0.02


def test_short_run_chains_start_from_uniform_noise():
  method, config = _method(persistent=False)
  x0, rows = method._initial_chains({}, jax.random.key(3), 50_000)
  assert rows is None
  x0 = np.asarray(x0)
  assert x0.min() >= config.ebm.init_low and x0.max() <= config.ebm.init_high
  np.testing.assert_allclose(x0.var(axis=0), (config.ebm.init_high - config.ebm.init_low) ** 2 / 12,
                             rtol=0.03)


def test_persistent_samples_are_k_more_steps_from_buffer_chains():
  """With E = |x|²/2 and no noise, K steps scale x by (1 − s)^K: every sample is a distinct
  buffer chain so scaled; a short-run model's samples come from noise."""
  method, config = _method(persistent=True, buffer_size=64, n_steps=3, step_size=0.5,
                           noise_scale=0.0)
  method.energy = lambda state, x: 0.5 * jnp.sum(x ** 2, -1)
  buffer = jnp.stack([jnp.arange(64.0) + 10, -jnp.arange(64.0)], axis=1)
  samples = np.asarray(jax.jit(method.sample, static_argnums=2)(
      {'per_example': {'buffer': buffer}}, jax.random.key(0), 32))
  chains = samples / 0.5 ** 3
  rows = np.round(chains[:, 0] - 10).astype(int)
  np.testing.assert_allclose(chains, np.asarray(buffer)[rows], rtol=1e-6)
  assert len(set(rows)) == 32
  short_run, _ = _method(persistent=False, n_steps=3, step_size=0.5, noise_scale=0.0)
  short_run.energy = method.energy
  noise = np.asarray(short_run.sample({}, jax.random.key(0), 1000)) / 0.5 ** 3
  assert np.all(np.abs(noise) <= config.ebm.init_high + 1e-5)


@pytest.mark.parametrize('persistent', [False, True])
def test_trajectory_is_the_sampling_chain(persistent):
  """Frame 0 is the chain start (noise / buffer chains), the last frame is `sample` with the
  same key; frames lie at evenly spaced steps (K = 8, 4 frames: every 2 steps)."""
  method, _ = _method(persistent=persistent, buffer_size=64, n_steps=8)
  assert has_capability(method, 'trajectory')
  state = method.init(jax.random.key(0), {'x': jnp.zeros((16, 2))})
  key = jax.random.key(1)
  frames = jax.jit(method.trajectory, static_argnums=(2, 3))(state, key, 5, 4)
  assert frames.shape == (5, 5, 2)
  k_start, k_chain = jax.random.split(key)
  start = method.chain_start(state, k_start, 5)
  np.testing.assert_array_equal(frames[0], start)
  np.testing.assert_allclose(frames[-1], method.sample(state, key, 5), rtol=1e-5, atol=1e-6)
  two_steps = method.run_chains(state, start, k_chain, n_steps=2)[0]
  np.testing.assert_allclose(frames[1], two_steps, rtol=1e-5, atol=1e-6)


def test_clamp_is_a_switch_for_images_and_never_applies_to_points():
  """E = −3·Σx pulls every pixel beyond 1: the chains stay in [-1, 1] only when clamped."""
  pull = lambda state, x: -3.0 * jnp.sum(x.reshape(len(x), -1), -1)
  for clamp in (False, True):
    method = _image_method(ebm_fashion.get_config('smoke'), clamp=clamp, n_steps=3)
    method.energy = pull
    for x in (method.sample({}, jax.random.key(0), 4),
              method.trajectory({}, jax.random.key(0), 4, 3)):
      assert (float(jnp.max(jnp.abs(x))) <= 1.0) == clamp
  points, config = _method(clamp=True, n_steps=3, step_size=1.0)  # 3 steps of +3 from noise
  points.energy = pull
  assert float(jnp.min(points.sample({}, jax.random.key(0), 4))) > config.ebm.init_high


def test_reference_configs_do_not_clamp_and_tuned_ones_do():
  assert not ebm_cifar.get_config().ebm.clamp
  assert ebm_fashion.get_config().ebm.clamp and ebm_cifar_convergent.get_config().ebm.clamp


def test_long_run_diagnostics_are_reported(tmp_path):
  from egm.run import experiment
  from egm.evaluation import evaluate
  config = ebm_toy2d.get_config('smoke')
  exp = experiment.build(config)
  results = evaluate.evaluate_state(exp, exp.init_state(), str(tmp_path))
  assert results['long_run_steps'] == config.eval.long_run_factor * config.ebm.n_steps
  assert 0.0 <= results['long_run_mh_acceptance'] <= 1.0
  for name in ('short_run', 'long_run', 'long_run_mh'):
    assert 0.0 <= results[f'{name}_tv'] <= 1.0
    assert np.isfinite(results[f'{name}_energy'])
    assert (tmp_path / f'{name}.png').exists()


@pytest.mark.parametrize('override, phrase', [
    ({'n_steps': 0}, 'ebm.n_steps is 0'),
    ({'step_size': -1.0}, 'ebm.step_size is -1.0'),
    ({'noise_scale': -0.1}, 'ebm.noise_scale is -0.1'),
    ({'mh_target_acceptance': 1.0}, 'ebm.mh_target_acceptance is 1.0'),
    ({'persistent': True, 'rejuvenation': 1.5}, 'ebm.rejuvenation is 1.5'),
    ({'persistent': True, 'buffer_size': 4}, 'ebm.buffer_size 4 is smaller than the batch 16'),
])
def test_bad_ebm_settings(override, phrase):
  with pytest.raises(EgmError, match=re.escape(phrase) + '.*--config.ebm'):
    _method(**override)


def test_energy_of_the_wrong_shape_is_named():
  with pytest.raises(EgmError, match='energy_fn must return one scalar per example'):
    langevin(lambda x: jnp.sum(x), jnp.zeros((4, 2)), jax.random.key(0), n_steps=2,
             step_size=0.1, noise_scale=0.1)
