"""egm.sampling as a library: one convention for langevin/mala and their
kernels, per-chain info, trajectories, errors, gradients, Flax energies."""

import functools
import importlib
import inspect
import pkgutil
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import egm.sampling
from egm import sampling
from egm.errors import EgmError

SAMPLERS = [(sampling.langevin, sampling.langevin_kernel),
            (sampling.mala, sampling.mala_kernel)]
quadratic = lambda x: 0.5 * jnp.sum(x**2, -1)


def test_langevin_and_mala_take_the_same_arguments():
  sampler, kernel = (
      [inspect.signature(f).parameters for f in pair]
      for pair in zip(*SAMPLERS))
  for langevin_params, mala_params in (sampler, kernel):
    assert [(p.name, p.kind, p.default) for p in langevin_params.values()] == [
        (p.name, p.kind, p.default) for p in mala_params.values()]
  positional = [p.name for p in sampler[0].values()
                if p.kind == p.POSITIONAL_OR_KEYWORD]
  assert positional == ['energy_fn', 'x0', 'key']
  assert list(sampler[0])[3:] == [
      'n_steps', 'step_size', 'noise_scale', 'temperature', 'clip',
      'stop_gradient', 'remat', 'record_every']
  assert list(kernel[0]) == ['energy_fn', 'step_size', 'noise_scale',
                             'temperature', 'clip']


def test_every_public_name_is_reachable_and_no_module_is_shadowed():
  modules = {m.name for m in pkgutil.iter_modules(egm.sampling.__path__)}
  assert modules == {'core', 'metropolis', 'posterior', 'schedules', 'ula'}
  assert not modules & (set(sampling.__all__) - {'schedules'})
  for name in modules:
    module = importlib.import_module(f'egm.sampling.{name}')
    assert getattr(egm.sampling, name) is module
  for name in sampling.__all__:
    value = getattr(egm.sampling, name)
    assert isinstance(value, types.ModuleType) == (name == 'schedules')


def test_kernels_return_the_same_structure():
  state = sampling.init_state(quadratic, jnp.ones((5, 3)))
  shapes = [jax.eval_shape(kernel(quadratic, step_size=0.1, clip=(-2, 2)),
                           state, jax.random.key(0))
            for _, kernel in SAMPLERS]
  assert shapes[0] == shapes[1]
  new_state, info = shapes[0]
  assert isinstance(new_state, sampling.LangevinState)
  assert isinstance(info, sampling.StepInfo)
  assert [(a.shape, a.dtype) for a in info] == [
      ((5,), jnp.float32), ((5,), jnp.bool_), ((5,), jnp.float32)]


def test_clip_langevin_clamps_and_mala_samples_the_truncated_target():
  """Clamped ULA piles chains on the bound; MALA rejects proposals outside
  [lo, hi] and samples N(0, 1) truncated to it (moments within 5 se)."""
  lo, hi, n = -0.5, 1.5, 20_000
  run = lambda sampler: jax.jit(functools.partial(
      sampler, quadratic, n_steps=200, step_size=0.3,
      clip=(lo, hi)))(jnp.zeros((n, 1)), jax.random.key(0))[0][:, 0]
  x = np.asarray(run(sampling.mala), np.float64)
  truncated = scipy.stats.truncnorm(lo, hi)
  mean_z = abs(x.mean() - truncated.mean()) / truncated.std() * np.sqrt(n)
  fourth = truncated.expect(lambda y: (y - truncated.mean())**4)
  var_z = abs(x.var() - truncated.var()) / np.sqrt(
      (fourth - truncated.var()**2) / n)
  print(f'MALA on [{lo}, {hi}]: mean err {mean_z:.2f} se, var err '
        f'{var_z:.2f} se')
  assert lo <= x.min() and x.max() <= hi and np.mean(x == lo) == 0
  assert mean_z < 5 and var_z < 5
  x = run(sampling.langevin)
  assert lo <= x.min() and x.max() <= hi and np.mean(x == lo) > 0.01


@pytest.mark.parametrize('sampler', [s for s, _ in SAMPLERS])
def test_per_chain_info(sampler):
  energy = lambda x: 0.5 * jnp.sum((x - 1.0)**2, -1)
  x, info = jax.jit(functools.partial(
      sampler, energy, n_steps=6, step_size=0.8))(jnp.zeros((5, 3)),
                                                   jax.random.key(1))
  assert info.energy.shape == info.grad_norm.shape == (6,)
  assert info.acceptance_rate.shape == (6,)
  assert info.chain_acceptance_rate.shape == info.decision_log_prob.shape
  assert info.decision_log_prob.shape == (5,) and info.trajectory is None
  np.testing.assert_array_equal(info.final_state.position, x)
  np.testing.assert_allclose(info.final_state.energy, energy(x), rtol=1e-6)
  np.testing.assert_allclose(info.final_state.grad, x - 1.0, rtol=1e-6)
  np.testing.assert_allclose(info.energy[-1], np.mean(energy(x)), rtol=1e-6)
  np.testing.assert_allclose(np.mean(info.chain_acceptance_rate),
                             np.mean(info.acceptance_rate), rtol=1e-6)
  if sampler is sampling.langevin:
    np.testing.assert_array_equal(info.chain_acceptance_rate, np.ones(5))
    np.testing.assert_array_equal(info.decision_log_prob, np.zeros(5))
  else:  # Step 0.8 is large for this target: some chains reject.
    assert 0 < float(np.min(info.chain_acceptance_rate)) < 1
    assert np.all(np.asarray(info.decision_log_prob) <= 0)


@pytest.mark.parametrize('n_steps, every', [(7, 3), (6, 2)])
@pytest.mark.parametrize('sampler, kernel', SAMPLERS)
def test_trajectory_frames_are_the_chain_run_step_by_step(
    sampler, kernel, n_steps, every):
  """Frames at steps 0, k, 2k, ... equal a loop of the kernel with keys
  split(key, n_steps); recording leaves the chain and its info unchanged."""
  x0, key = jnp.linspace(-1, 1, 8).reshape(4, 2), jax.random.key(2)
  kwargs = dict(n_steps=n_steps, step_size=0.3, clip=(-1.5, 1.5))
  run = jax.jit(functools.partial(sampler, quadratic, **kwargs),
                static_argnames='record_every')
  x, info = run(x0, key, record_every=every)
  state, states = sampling.init_state(quadratic, x0), [x0]
  step = jax.jit(kernel(quadratic, step_size=0.3, clip=(-1.5, 1.5)))
  for step_key in jax.random.split(key, n_steps):
    state, _ = step(state, step_key)
    states.append(state.position)
  assert info.trajectory.shape == (n_steps // every + 1, 4, 2)
  np.testing.assert_allclose(info.trajectory, np.stack(states[::every]),
                             rtol=1e-6, atol=1e-7)
  plain_x, plain_info = run(x0, key)
  np.testing.assert_array_equal(x, plain_x)
  for name in ('energy', 'acceptance_rate', 'chain_acceptance_rate'):
    np.testing.assert_allclose(getattr(info, name), getattr(plain_info, name),
                               rtol=1e-6)


@pytest.mark.parametrize('x0, energy_fn, message', [
    (jnp.zeros(2), quadratic,
     r'got shape \(2,\).*x0\[None\] \(one 2-D point of shape \(2,\) becomes '
     r'\(1, 2\)\)'),
    (jnp.zeros(2), lambda x: 0.5 * jnp.sum(x**2, axis=1), r'x0\[None\]'),
    (jnp.zeros((4, 2)), lambda x: jnp.sum(x**2),
     r'returned an array of shape \(\).*one number for the whole batch: sum '
     r'over the non-batch axes only'),
    (jnp.zeros((4, 2)), lambda x: quadratic(x)[:, None],
     r'shape \(4, 1\).*one scalar per example, shape \(4,\).*\[:, 0\]'),
])
@pytest.mark.parametrize('sampler', [s for s, _ in SAMPLERS])
def test_missing_batch_axis_names_the_problem_and_the_fix(
    sampler, x0, energy_fn, message):
  with pytest.raises(EgmError, match=message):
    sampler(energy_fn, x0, jax.random.key(0), n_steps=2, step_size=0.1)


def test_temperature_sets_the_default_noise():
  x0, key, t, h = jnp.ones((3, 2)), jax.random.key(3), 0.3, 0.05
  for sampler, _ in SAMPLERS:
    by_temperature = sampler(quadratic, x0, key, n_steps=4, step_size=h,
                             temperature=t)[0]
    by_noise = sampler(quadratic, x0, key, n_steps=4, step_size=h,
                       noise_scale=np.sqrt(2 * t * h), temperature=(
                           t if sampler is sampling.mala else None))[0]
    np.testing.assert_allclose(by_temperature, by_noise, rtol=1e-6)
  with pytest.raises(EgmError, match='langevin takes noise_scale or '
                     'temperature, not both'):
    sampling.langevin(quadratic, x0, key, n_steps=4, step_size=h,
                      noise_scale=0.1, temperature=t)


def test_bad_options_raise():
  run = functools.partial(sampling.mala, quadratic, jnp.ones((3, 2)),
                          jax.random.key(0), n_steps=4, step_size=0.1)
  with pytest.raises(EgmError, match=r'record_every must be None or a Python '
                     r'int in \[1, n_steps=4\], got 5'):
    run(record_every=5)
  with pytest.raises(EgmError, match=r'clip must be a pair of numbers \(lo, '
                     r'hi\) with lo < hi, got \(1.0, -1.0\)'):
    run(clip=(1.0, -1.0))
  with pytest.raises(EgmError, match=r'one loss per chain, shape \(B,\)'):
    sampling.score_corrected_loss(jnp.ones((3, 2)), jnp.zeros(3))


def mala_one_step_mean(mu, x0, h):
  """E[x_1] of one MALA step from x0 on N(mu, 1) (default noise), by
  quadrature over the proposal noise in float64."""
  eps, d_eps = np.linspace(-12, 12, 200_001, retstep=True)
  weight = np.exp(-eps**2 / 2) / np.sqrt(2 * np.pi) * d_eps
  energy = lambda x: 0.5 * (x - mu)**2
  proposal = x0 - h * (x0 - mu) + np.sqrt(2 * h) * eps
  log_backward = -(x0 - proposal + h * (proposal - mu))**2 / (4 * h)
  accept = np.minimum(1, np.exp(energy(x0) - energy(proposal) + log_backward
                                + eps**2 / 2))
  return np.sum(weight * (accept * proposal + (1 - accept) * x0))


def test_mala_gradient_is_pathwise_and_score_corrected_loss_adds_decisions():
  """d E[x_1]/d mu for one MALA step from x0 = 1 on N(mu, 1), h = 0.5 (93%
  acceptance): jax.grad through mala holds the accept/reject decision fixed
  and misses the exact derivative (a finite difference of the quadrature) by
  about 10%; score_corrected_loss recovers it."""
  x0, h, d = 1.0, 0.5, 1e-4
  exact = (mala_one_step_mean(d, x0, h) - mala_one_step_mean(-d, x0, h)) / (
      2 * d)

  def chain(mu, key):
    energy = lambda x: 0.5 * jnp.sum((x - mu)**2, -1)
    x, info = sampling.mala(energy, jnp.full((10_000, 1), x0), key,
                            n_steps=1, step_size=h)
    return x[:, 0], info

  pathwise = lambda mu, key: jnp.mean(chain(mu, key)[0])
  def corrected(mu, key):
    x, info = chain(mu, key)
    return jnp.mean(sampling.score_corrected_loss(x, info.decision_log_prob))

  keys = jax.random.split(jax.random.key(4), 20)
  estimates = {}
  for name, loss in (('pathwise', pathwise), ('corrected', corrected)):
    grads = np.asarray(jax.jit(jax.vmap(jax.grad(loss), (None, 0)))(0.0, keys))
    estimates[name] = (grads.mean(), grads.std() / np.sqrt(len(grads)))
  np.testing.assert_allclose(jax.jit(corrected)(0.0, keys[0]),
                             jax.jit(pathwise)(0.0, keys[0]), rtol=1e-6)
  acceptance = float(chain(0.0, keys[0])[1].acceptance_rate[0])
  print(f'acceptance {acceptance:.3f}; d E[x_1]/d mu: exact {exact:.4f}, '
        + ', '.join(f'{k} {m:.4f} +- {s:.4f}' for k, (m, s) in
                    estimates.items()))
  path_mean, path_se = estimates['pathwise']
  corrected_mean, corrected_se = estimates['corrected']
  assert acceptance > 0.9
  assert abs(path_mean - exact) > 0.05 * exact
  assert abs(path_mean - exact) > 20 * path_se
  assert abs(corrected_mean - exact) < 5 * corrected_se


class MLPEnergy(nn.Module):
  """E(x) = MLP(x) + |x|^2 / 2: (B, D) -> (B,)."""

  @nn.compact
  def __call__(self, x):
    hidden = nn.softplus(nn.Dense(16)(x))
    return nn.Dense(1)(hidden)[:, 0] + 0.5 * jnp.sum(x**2, -1)


@pytest.mark.parametrize('sampler', [s for s, _ in SAMPLERS])
def test_flax_module_energy_gradient_matches_finite_differences(sampler):
  """jax.grad through a 10-step chain on model.apply(params, x) w.r.t. the
  module's params equals a central difference of the same chain (same key)
  along a random direction, in float64."""
  with jax.enable_x64(True):
    model = MLPEnergy()
    x0 = jax.random.normal(jax.random.key(5), (6, 2), jnp.float64)
    params = jax.tree.map(lambda p: p.astype(jnp.float64),
                          model.init(jax.random.key(6), x0))

    @jax.jit
    def loss(params):
      x, _ = sampler(lambda x: model.apply(params, x), x0, jax.random.key(7),
                     n_steps=10, step_size=0.1)
      return jnp.sum(jnp.cos(x) + x**2)

    grads = jax.grad(loss)(params)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(8), len(leaves))
    direction = treedef.unflatten(
        [jax.random.normal(k, p.shape, p.dtype) for k, p in zip(keys, leaves)])
    shifted = lambda s: jax.tree.map(lambda p, v: p + s * v, params, direction)
    eps = 1e-6
    fd = (loss(shifted(eps)) - loss(shifted(-eps))) / (2 * eps)
    ad = sum(jnp.vdot(g, v) for g, v in zip(jax.tree.leaves(grads),
                                            jax.tree.leaves(direction)))
    print(f'{sampler.__name__}: directional derivative AD {float(ad):.8f}, '
          f'FD {float(fd):.8f}')
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    np.testing.assert_allclose(ad, fd, rtol=1e-6)
