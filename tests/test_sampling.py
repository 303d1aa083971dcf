"""egm.sampling: exactness on Gaussians, gradients, errors, tracing."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egm import sampling
from egm.errors import EgmError
from egm.sampling import adapt_step_size
from egm.sampling import langevin_trajectory
from egm.sampling import schedules
from gaussian_checks import cov_standard_errors, moment_errors, run_jitted, ula_stationary_cov

MU = np.array([1.0, -0.5])
SIGMA = np.array([[1.0, 0.6], [0.6, 0.5]])  # Correlated; eigenvalues 1.4, 0.1.
PRECISION = np.linalg.inv(SIGMA)
N_CHAINS = 50_000
Z_SCORE = 5.0  # Tolerances are this many standard errors of the estimate.


def gaussian_energy(x):
  """E(x) = (x - mu)^T Sigma^-1 (x - mu) / 2 for x (B, 2)."""
  centred = x - MU.astype(x.dtype)
  return 0.5 * jnp.sum((centred @ PRECISION.astype(x.dtype)) * centred, -1)


def test_langevin_matches_exact_discretised_stationary_law():
  delta = 0.4
  x, info = run_jitted(
      sampling.langevin, gaussian_energy, jnp.zeros((N_CHAINS, 2)),
      jax.random.key(0), n_steps=300, step_size=delta**2 / 2, noise_scale=delta)
  exact = ula_stationary_cov(PRECISION, delta)
  mean_z, cov_z = moment_errors(x, MU, exact)
  # The O(delta^2) bias is real: the target Sigma is many errors away.
  bias_z = np.max(np.abs(exact - SIGMA) / cov_standard_errors(exact, N_CHAINS))
  print(f'ULA delta={delta}: mean err {mean_z:.2f} se, cov err vs exact '
        f'discretised law {cov_z:.2f} se; Sigma is {bias_z:.1f} se away')
  assert mean_z < Z_SCORE and cov_z < Z_SCORE
  assert bias_z > 2 * Z_SCORE
  np.testing.assert_array_equal(info.acceptance_rate, np.ones(300))


def test_mala_is_exact_where_langevin_is_biased():
  delta = 0.5
  x, info = run_jitted(sampling.mala, gaussian_energy,
                       jnp.zeros((N_CHAINS, 2)), jax.random.key(1),
                       n_steps=200, step_size=delta**2 / 2)
  mean_z, cov_z = moment_errors(x, MU, SIGMA)
  ula = ula_stationary_cov(PRECISION, delta)
  ula_z = np.max(np.abs(ula - SIGMA) / cov_standard_errors(SIGMA, N_CHAINS))
  print(f'MALA delta={delta}: mean err {mean_z:.2f} se, cov err {cov_z:.2f} '
        f'se (unadjusted would be {ula_z:.1f} se off); acceptance '
        f'{float(info.acceptance_rate[-50:].mean()):.3f}')
  assert mean_z < Z_SCORE and cov_z < Z_SCORE
  assert ula_z > 2 * Z_SCORE


def test_mala_acceptance_rises_to_one_as_step_shrinks():
  chol = np.linalg.cholesky(SIGMA)
  x0 = MU + jax.random.normal(jax.random.key(2), (10_000, 2)) @ chol.T
  run = jax.jit(functools.partial(sampling.mala, gaussian_energy, x0,
                                  jax.random.key(3), n_steps=20))
  rates = [float(run(step_size=delta**2 / 2)[1].acceptance_rate.mean())
           for delta in (1.0, 0.5, 0.25, 0.05)]
  print('MALA acceptance for delta 1, 0.5, 0.25, 0.05:', np.round(rates, 4))
  assert np.all(np.diff(rates) > 0)
  assert rates[-1] > 0.99


@pytest.mark.parametrize('noise_scale', [None, 0.2])
def test_mala_samples_exp_minus_energy_over_temperature(noise_scale):
  """exp(-E/T) of the Gaussian energy is N(mu, T Sigma), with the default noise
  sqrt(2 T step) (MALA on E/T) and with any other noise."""
  temperature = 0.3
  x, info = run_jitted(sampling.mala, gaussian_energy,
                       jnp.zeros((N_CHAINS, 2)), jax.random.key(8),
                       n_steps=300, step_size=0.1, noise_scale=noise_scale,
                       temperature=temperature)
  mean_z, cov_z = moment_errors(x, MU, temperature * SIGMA)
  print(f'MALA at T={temperature}, noise {noise_scale}: mean err '
        f'{mean_z:.2f} se, cov err {cov_z:.2f} se, acceptance '
        f'{float(info.acceptance_rate[-50:].mean()):.3f}')
  assert mean_z < Z_SCORE and cov_z < Z_SCORE


@pytest.mark.parametrize('start', [20.0, 1e-5])
def test_adapted_step_size_reaches_the_target_acceptance(start):
  """From a step that is never (20) or always (1e-5) accepted, the pilot
  finds one whose MALA acceptance on exp(-E/T) is near the target."""
  temperature, target = 0.3, 0.57
  chol = np.linalg.cholesky(temperature * SIGMA)
  x0 = MU + jax.random.normal(jax.random.key(9), (10_000, 2)) @ chol.T
  step = jax.jit(functools.partial(
      adapt_step_size, gaussian_energy, n_steps=200,
      step_size=start, target_acceptance=target,
      temperature=temperature))(x0, jax.random.key(10))
  _, info = run_jitted(sampling.mala, gaussian_energy, x0, jax.random.key(11),
                       n_steps=50, step_size=step, temperature=temperature)
  acceptance = float(info.acceptance_rate.mean())
  print(f'adapted from {start}: step {float(step):.4f}, acceptance '
        f'{acceptance:.3f}')
  assert step.shape == () and abs(acceptance - target) < 0.05


def test_trajectory_records_the_langevin_chain_at_evenly_spaced_steps():
  """Without noise on |x|^2/2 with step 0.5, x_t = x0 / 2^t: frames at steps
  0, 2, 3, 4, 6 of 6 (rounded); with noise the last frame is `langevin`'s
  result for the same key."""
  energy = lambda x: 0.5 * jnp.sum(x**2, -1)
  x0 = jnp.array([[2.0, -1.0]])
  frames = run_jitted(langevin_trajectory, energy, x0, jax.random.key(0),
                      n_steps=6, frames=4, step_size=0.5, noise_scale=0.0)
  steps = np.array([0, 2, 3, 4, 6])
  np.testing.assert_allclose(frames, x0[None] * 0.5**steps[:, None, None])
  kwargs = dict(n_steps=7, step_size=0.1, noise_scale=0.3)
  frames = run_jitted(langevin_trajectory, energy, jnp.ones((5, 2)),
                      jax.random.key(1), frames=3, **kwargs)
  x, _ = run_jitted(sampling.langevin, energy, jnp.ones((5, 2)),
                    jax.random.key(1), **kwargs)
  assert frames.shape == (4, 5, 2)
  np.testing.assert_allclose(frames[-1], x, rtol=1e-6)


def test_schedules_are_applied_per_step_and_clip_bounds():
  steps = schedules.linear(0.5, 0.1, 6)
  x0 = jnp.array([[2.0, -1.0]])
  x, _ = run_jitted(sampling.langevin, lambda x: 0.5 * jnp.sum(x**2, -1),
                    x0, jax.random.key(0), n_steps=6, step_size=steps,
                    noise_scale=0.0)
  np.testing.assert_allclose(x, x0 * np.prod(1 - np.asarray(steps)),
                             rtol=1e-6)
  x, _ = run_jitted(sampling.langevin, lambda x: jnp.sum(-3 * x, -1),
                    jnp.zeros((64, 8)), jax.random.key(0), n_steps=5,
                    step_size=1.0, noise_scale=0.5, clip=(-1.0, 1.0))
  assert float(x.min()) >= -1.0 and float(x.max()) == 1.0


def test_schedule_values():
  np.testing.assert_allclose(schedules.constant(0.1, 3), [0.1] * 3)
  np.testing.assert_allclose(schedules.linear(1.5e-2, 0.0, 4),
                             [1.5e-2, 1e-2, 5e-3, 0.0], atol=1e-9)
  np.testing.assert_allclose(schedules.geometric(1.0, 0.01, 3),
                             [1.0, 0.1, 0.01], rtol=1e-6)
  np.testing.assert_allclose(schedules.geometric(0.2, 0.1, 1), [0.2])
  for s in (schedules.constant(1, 5), schedules.linear(0, 1, 5),
            schedules.geometric(1, 2, 5)):
    assert s.shape == (5,) and s.dtype == jnp.float32


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def nonlinear_energy(theta, x):
  """A non-Gaussian energy with a parameter theta (scalar): x (B, D)."""
  return jnp.sum(0.25 * theta * x**4 + 0.5 * (x - 0.3)**2, -1) + jnp.sin(
      x[:, 0] * x[:, 1])


def chain_loss(sampler, x0, theta, step_size, noise_scale, **kwargs):
  x, _ = sampler(functools.partial(nonlinear_energy, theta), x0,
                 jax.random.key(7), n_steps=10, step_size=step_size,
                 noise_scale=noise_scale, **kwargs)
  return jnp.sum(jnp.cos(x) + x**2)


@pytest.mark.parametrize('sampler', [sampling.langevin, sampling.mala])
def test_gradients_through_chain_match_finite_differences(x64, sampler):
  # Strongly typed float64 so that the perturbed calls reuse one compile.
  args = tuple(jnp.asarray(np.asarray(a, np.float64)) for a in (
      [[0.5, -1.0], [1.2, 0.3], [-0.4, 0.8]], 0.7, 0.1, 0.3))
  loss = jax.jit(functools.partial(chain_loss, sampler))
  grads = jax.grad(loss, argnums=(0, 1, 2, 3))(*args)
  eps = 1e-6
  errors = {}
  for i, name in enumerate(('x0', 'theta', 'step_size', 'noise_scale')):
    flat = np.asarray(args[i]).ravel()
    fd = np.zeros_like(flat)
    for j in range(flat.size):
      plus, minus = flat.copy(), flat.copy()
      plus[j] += eps
      minus[j] -= eps
      shifted = lambda v: args[:i] + (jnp.asarray(v.reshape(
          np.shape(args[i]))),) + args[i + 1:]
      fd[j] = (loss(*shifted(plus)) - loss(*shifted(minus))) / (2 * eps)
    ad = np.asarray(grads[i]).ravel()
    errors[name] = np.linalg.norm(ad - fd) / np.linalg.norm(fd)
  print(f'{sampler.__name__} FD relative errors:',
        {k: f'{v:.1e}' for k, v in errors.items()})
  assert max(errors.values()) < 1e-6


def test_stop_gradient_gives_zero_gradients():
  args = (jnp.ones((4, 2)), jnp.asarray(0.7), jnp.asarray(0.1),
          jnp.asarray(0.3))
  for sampler in (sampling.langevin, sampling.mala):
    grads = jax.jit(jax.grad(
        functools.partial(chain_loss, sampler, stop_gradient=True),
        argnums=(0, 1, 2, 3)))(*args)
    for g in grads:
      np.testing.assert_array_equal(g, np.zeros_like(g))


def test_remat_gives_same_values_and_gradients():
  # Both samplers share the scan driver that applies remat; test it once.
  args = (jnp.ones((4, 2)), jnp.asarray(0.7), jnp.asarray(0.1),
          jnp.asarray(0.3))
  plain, remat = (jax.jit(jax.value_and_grad(
      functools.partial(chain_loss, sampling.langevin, remat=remat),
      argnums=(0, 1, 2, 3)))(*args) for remat in (False, True))
  chex.assert_trees_all_close(plain, remat, rtol=1e-6)


def test_remat_memory_does_not_grow_with_stored_activations():
  """Temp memory of d(loss)/d(params) through a 100-step MLP-energy chain."""
  k1, k2 = jax.random.split(jax.random.key(0))
  params = (jax.random.normal(k1, (64, 512)) / 8,
            jax.random.normal(k2, (512,)) / 20)

  def energy(params, x):
    w, v = params
    return jax.nn.softplus(x @ w) @ v + 0.5 * jnp.sum(x**2, -1)

  def loss(params, x0, key, remat):
    x, _ = sampling.langevin(functools.partial(energy, params), x0, key,
                             n_steps=100, step_size=0.1, noise_scale=0.01,
                             remat=remat)
    return jnp.sum(x**2)

  temp = {}
  for remat in (False, True):
    grad = jax.jit(jax.grad(functools.partial(loss, remat=remat)))
    compiled = grad.lower(params, jnp.ones((64, 64)), jax.random.key(1))
    temp[remat] = compiled.compile().memory_analysis().temp_size_in_bytes
  print(f'temp bytes, 100-step chain gradient: no remat {temp[False]:,}, '
        f'remat {temp[True]:,}')
  assert temp[True] < temp[False] / 2


def test_info_fields():
  x0 = jnp.ones((8, 3))
  _, info = run_jitted(sampling.langevin, lambda x: 0.5 * jnp.sum(x**2, -1),
                       x0, jax.random.key(0), n_steps=4, step_size=0.5,
                       noise_scale=0.0)
  # x halves each step, so E = 3/2 * 4^-t and |dE/dx| = sqrt(3) * 2^-t.
  t = np.arange(1, 5)
  np.testing.assert_allclose(info.energy, 1.5 * 4.0**-t, rtol=1e-6)
  np.testing.assert_allclose(info.grad_norm, np.sqrt(3) * 2.0**-t, rtol=1e-6)
  state = sampling.init_state(lambda x: 0.5 * jnp.sum(x**2, -1), x0)
  np.testing.assert_allclose(state.grad, x0)
  np.testing.assert_allclose(state.energy, np.full(8, 1.5))


def test_jitted_chain_does_not_retrace():
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(x0, key, step_size, noise_scale):
    return sampling.langevin(gaussian_energy, x0, key, n_steps=20,
                             step_size=step_size, noise_scale=noise_scale)

  x0 = jnp.zeros((16, 2))
  inputs = [(jax.random.key(seed), jnp.full(20, 0.01 * (seed + 1)),
             jnp.asarray(0.1 * (seed + 1))) for seed in range(3)]
  partial = jax.jit(functools.partial(
      sampling.mala, gaussian_energy, n_steps=5,
      step_size=schedules.geometric(0.1, 0.01, 5)))
  with jax.transfer_guard('disallow'):  # No hidden host copies either.
    for key, step_size, noise_scale in inputs:
      run(x0, key, step_size, noise_scale)
    x, info = partial(x0, inputs[0][0])
  assert x.shape == (16, 2) and info.acceptance_rate.shape == (5,)


def run_langevin(**overrides):
  kwargs = dict(n_steps=10, step_size=0.1, noise_scale=0.01)
  kwargs.update(overrides)
  energy_fn = kwargs.pop('energy_fn', gaussian_energy)
  return sampling.langevin(energy_fn, jnp.zeros((4, 2)), jax.random.key(0),
                           **kwargs)


@pytest.mark.parametrize('overrides, message', [
    (dict(energy_fn=lambda x: gaussian_energy(x)[:, None]),
     r'energy_fn returned an array of shape \(4, 1\) for a batch of shape '
     r'\(4, 2\); energy_fn must return one scalar per example, shape \(4,\)'),
    (dict(energy_fn=lambda x: jnp.sum(x)),
     r'returned an array of shape \(\)'),
    (dict(n_steps=0), 'n_steps must be a positive Python int, got 0'),
    (dict(n_steps=2.5), 'n_steps must be a positive Python int, got 2.5'),
    (dict(n_steps=True), 'n_steps must be a positive Python int'),
    (dict(step_size=-0.1), 'step_size must be non-negative at every step'),
    (dict(noise_scale=-1.0), 'noise_scale must be non-negative'),
    (dict(step_size=np.array([0.1] * 9 + [-0.1])),
     'step_size must be non-negative at every step, got minimum -0.1'),
    (dict(step_size=schedules.linear(0.1, 0.0, 7)),
     r'step_size is a schedule of length 7, but the chain runs n_steps=10'),
    (dict(noise_scale=jnp.ones((10, 2))),
     r'noise_scale is an array of shape \(10, 2\)'),
])
def test_bad_inputs_raise(overrides, message):
  with pytest.raises(EgmError, match=message):
    run_langevin(**overrides)


def test_bad_inputs_raise_elsewhere():
  with pytest.raises(EgmError, match='n_steps must be a positive Python int'):
    jax.jit(lambda n: run_langevin(n_steps=n))(10)
  with pytest.raises(EgmError, match='noise_scale must be positive'):
    sampling.mala(gaussian_energy, jnp.zeros((4, 2)), jax.random.key(0),
                  n_steps=3, step_size=0.1, noise_scale=0.0)
  with pytest.raises(EgmError, match='step_size must be positive'):
    sampling.mala(gaussian_energy, jnp.zeros((4, 2)), jax.random.key(0),
                  n_steps=3, step_size=0.0)
  with pytest.raises(EgmError, match='temperature must be positive'):
    sampling.mala(gaussian_energy, jnp.zeros((4, 2)), jax.random.key(0),
                  n_steps=3, step_size=0.1, temperature=0.0)
  with pytest.raises(EgmError, match='target_acceptance is 1.2'):
    adapt_step_size(gaussian_energy, jnp.zeros((4, 2)),
                                jax.random.key(0), n_steps=3, step_size=0.1,
                                target_acceptance=1.2)
  with pytest.raises(EgmError, match='frames must be a positive Python int'):
    langevin_trajectory(
        gaussian_energy, jnp.zeros((4, 2)), jax.random.key(0), n_steps=3,
        frames=0, step_size=0.1, noise_scale=0.1)
  with pytest.raises(EgmError, match=r'floating-point array of shape \(B, '):
    sampling.init_state(gaussian_energy, jnp.zeros((4, 2), jnp.int32))
  with pytest.raises(EgmError, match='geometric schedule end must be '
                     'positive'):
    schedules.geometric(1.0, 0.0, 5)
  generate = lambda z: z @ jnp.ones((2, 6))
  with pytest.raises(EgmError, match='sigma must be one positive number'):
    sampling.latent_posterior_energy(generate, jnp.zeros((4, 6)), 0.0)
  with pytest.raises(EgmError, match=r'mask of shape \(5,\) does not '
                     r'broadcast to the observations x of shape \(4, 6\)'):
    sampling.latent_posterior_energy(generate, jnp.zeros((4, 6)), 1.0,
                                     mask=jnp.ones(5))
  energy = sampling.latent_posterior_energy(generate, jnp.zeros((4, 7)), 1.0)
  with pytest.raises(EgmError, match=r'generate_fn returned shape \(4, 6\)'):
    energy(jnp.zeros((4, 2)))
  # Traced negative values cannot be checked and are not errors.
  jax.jit(lambda s: run_langevin(step_size=s))(-0.1)
