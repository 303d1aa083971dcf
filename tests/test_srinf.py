"""srinf: the generator's objective, the step-size bound against its closed form in a
linear-Gaussian model (and where its minimiser lies against the exact KL's), gradients through
the chain, the hierarchical generators, the learned-step parameterisations, bad input."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import optimize

from configs import srinf_celeba, srinf_cifar, srinf_fashion, triangle_toy2d
from egm.errors import EgmError
from egm.methods import DataSpec, has_capability, make_method
from egm.methods.srinf import Srinf, short_run
from egm.nets import Networks
from egm.run import trainer
from egm.sampling import langevin

DIMS = (2, 3)  # latent layers of the linear-Gaussian model: z is 5-D, x is 8-D
SIGMA, K = 0.5, 10


def _method(config, shape, rows=64, batch=16):
  return make_method(config, DataSpec.of(shape, num_examples=rows, global_batch=batch))


def _points_config(**srinf):
  config = triangle_toy2d.get_config('smoke')
  config.method, config.model.sigma = 'srinf', SIGMA
  config.srinf.latent_dims = ','.join(map(str, DIMS))
  config.srinf.n_steps = K
  lr = srinf.pop('lr_step_size', None)
  config.srinf.update(srinf)
  if lr is not None:
    config.srinf.optim.step_size.lr = lr
  return config


def _linear(**srinf):
  """srinf on 8-D points whose generator is x = z W + b with known W, b; the posterior is
  N(mu, H^-1), H = I + W W^T / sigma^2."""
  method = _method(_points_config(**srinf), (8,))
  method.nets = Networks({'generator': nn.Dense(8)}, (sum(DIMS),))
  state = method.init(jax.random.key(0), {'x': jnp.zeros((2, 8))})
  rng = np.random.default_rng(0)
  w = rng.normal(size=(sum(DIMS), 8)) / math.sqrt(sum(DIMS))
  b = 0.1 * rng.normal(size=8)
  x = rng.normal(size=8)
  state['generator']['params'] = {'kernel': jnp.asarray(w, jnp.float32),
                                  'bias': jnp.asarray(b, jnp.float32)}
  h = np.eye(sum(DIMS)) + w @ w.T / SIGMA ** 2
  mu = np.linalg.solve(h, w @ (x - b) / SIGMA ** 2)
  u_min = np.sum((x - mu @ w - b) ** 2) / (2 * SIGMA ** 2) + 0.5 * mu @ mu
  neg_log_px = u_min + 0.5 * np.linalg.slogdet(h)[1] + 4 * math.log(2 * math.pi * SIGMA ** 2)
  return method, state, x, h, mu, neg_log_px


def _expand(per_layer):
  """(..., L) -> (..., D)."""
  return np.concatenate([np.repeat(per_layer[..., i:i + 1], d, -1)
                         for i, d in enumerate(DIMS)], -1)


def closed_form(h, mu, delta, reverse=None):
  """(the auxiliary bound + log p(x), exact KL(q_K ‖ posterior)) of K steps from N(0, I).

  delta: (D,) per-coordinate step; reverse: (a, b, log_c), each (K, D), or None (1, 1, 0).
  The chain is linear, so q_t = N(m_t, Σ_t) with m_t = A m_{t−1} + S H mu, Σ_t = A Σ A^T + 2S,
  A = I − S H, and every expectation of the bound is a Gaussian moment."""
  d = len(mu)
  s = np.diag(0.5 * np.asarray(delta, np.float64) ** 2)
  if reverse is None:
    reverse = (np.ones((K, d)), np.ones((K, d)), np.zeros((K, d)))
  a_rev, b_rev, lc_rev = (np.asarray(r, np.float64) for r in reverse)
  eye = np.eye(d)
  a_mat, c = eye - s @ h, s @ h @ mu
  m, cov, aux = np.zeros(d), eye, 0.0
  for t in range(K):
    m1, cov1 = a_mat @ m + c, a_mat @ cov @ a_mat.T + 2 * s
    cross = a_mat @ cov  # Cov(z_t, z_{t−1})
    r_mat = np.diag(a_rev[t]) - np.diag(b_rev[t]) @ s @ h  # u = z_{t−1} − R z_t − o
    o = np.diag(b_rev[t]) @ s @ h @ mu
    mean_u = m - r_mat @ m1 - o
    cov_u = cov + r_mat @ cov1 @ r_mat.T - cross.T @ r_mat.T - r_mat @ cross
    aux += (0.5 * np.sum(lc_rev[t]) - d / 2
            + 0.5 * np.sum((np.diag(cov_u) + mean_u ** 2) / (2 * np.diag(s) * np.exp(lc_rev[t]))))
    m, cov = m1, cov1
  quad = np.trace(h @ cov) + (mu - m) @ h @ (mu - m)
  e_log_q0 = -0.5 * d  # + d/2 log 2π on both sides
  e_log_post = 0.5 * np.linalg.slogdet(h)[1] - 0.5 * quad
  kl = 0.5 * (quad - d - np.linalg.slogdet(h @ cov)[1])
  return e_log_q0 + aux - e_log_post, kl


def _grid(h):
  top = math.sqrt(4 / np.linalg.eigvalsh(h).max())  # the chain is stable for δ²/2·λmax < 2
  return np.exp(np.linspace(math.log(0.05), math.log(0.99 * top), 1500))


def _learn(method, state, x, iters, batch=512, seed=1):
  """The step-size optimisation alone (θ fixed: a zero generator optimiser), x repeated over
  the batch; returns the state and log δ averaged over the second half of the iterations."""
  method.opt = optax.set_to_zero()
  state['generator']['opt_state'] = method.opt.init(state['generator']['params'])
  data = {'x': jnp.broadcast_to(jnp.asarray(x, jnp.float32), (batch, 8)),
          'index': jnp.arange(batch, dtype=jnp.int32)}

  @jax.jit
  def run(state):
    def body(i, carry):
      state, total = carry
      state, _ = method.update(state, data, jax.random.fold_in(jax.random.key(seed), i))
      keep = (i >= iters // 2).astype(jnp.float32)
      return state, total + keep * state['step_size']['params']['log_delta']
    return jax.lax.fori_loop(0, iters, body, (state, jnp.zeros(())))

  state, total = run(state)
  return state, float(jnp.exp(total / (iters - iters // 2)))


def test_bound_estimate_matches_its_closed_form_in_a_linear_gaussian_model():
  method, state, x, h, mu, neg_log_px = _linear()
  n = 20_000
  xb = jnp.broadcast_to(jnp.asarray(x, jnp.float32), (n, 8))
  rng = np.random.default_rng(3)
  reverse = {'a': 1 + 0.2 * rng.normal(size=(K, 2)), 'b': 1 + 0.3 * rng.normal(size=(K, 2)),
             'log_c': 0.3 * rng.normal(size=(K, 2))}
  for delta, rev in ((0.3, None), (0.45, reverse)):
    params = {'log_delta': jnp.log(jnp.float32(delta))}
    if rev is not None:
      params['reverse'] = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), rev)
    z0 = jax.random.normal(jax.random.key(4), (n, sum(DIMS)))
    run = method.chain(state, xb, z0, jax.random.key(5), params)
    per_example = np.asarray(method.bound(run, z0, xb), np.float64)
    want, _ = closed_form(h, mu, np.full(5, delta),
                          None if rev is None else [_expand(rev[k]) for k in ('a', 'b', 'log_c')])
    se = per_example.std() / math.sqrt(n)
    assert abs(per_example.mean() - (want + neg_log_px)) < 4 * se + 1e-3, (
        per_example.mean(), want + neg_log_px, se)


def test_learned_step_lands_at_the_bound_minimiser_same_form_reverse_kernel():
  method, state, x, h, mu, _ = _linear(reverse_kernel='fixed', step_size=0.2, lr_step_size=0.02)
  grid = _grid(h)
  values = np.array([closed_form(h, mu, np.full(5, d)) for d in grid])
  bound_min, kl_min = grid[np.argmin(values[:, 0])], grid[np.argmin(values[:, 1])]
  _, learned = _learn(method, state, x, iters=400)
  print(f'\nsame-form r: exact-KL argmin δ {kl_min:.3f}, bound argmin {bound_min:.3f} '
        f'({bound_min / kl_min:.2f}x), learned {learned:.3f}')
  assert abs(learned / bound_min - 1) < 0.05
  assert 1.2 < bound_min / kl_min < 1.7  # docs/methods/srinf.md: this bound overshoots


def test_learned_step_lands_at_the_bound_minimiser_learned_reverse_kernel():
  method, state, x, h, mu, _ = _linear(reverse_kernel='learned', step_size=0.2,
                                       lr_step_size=0.02)
  grid = _grid(h)
  kl_min = grid[np.argmin([closed_form(h, mu, np.full(5, d))[1] for d in grid])]

  def bound(p):  # (log δ, a, b, log c per step and layer) -> the closed-form bound
    a, b, lc = (_expand(p[1 + i * 2 * K:1 + (i + 1) * 2 * K].reshape(K, 2)) for i in range(3))
    return closed_form(h, mu, np.full(5, math.exp(p[0])), (a, b, lc))[0]

  p0 = np.concatenate([[math.log(0.3)], np.ones(2 * K), np.ones(2 * K), np.zeros(2 * K)])
  best = optimize.minimize(bound, p0, method='L-BFGS-B')
  bound_min = math.exp(best.x[0])
  state, learned = _learn(method, state, x, iters=600)
  print(f'\nlearned r: exact-KL argmin δ {kl_min:.3f}, bound argmin {bound_min:.3f} '
        f'({bound_min / kl_min:.2f}x), learned {learned:.3f}; bound {best.fun:.3f}')
  assert abs(learned / bound_min - 1) < 0.05
  assert 0.65 < bound_min / kl_min < 0.95  # documented in srinf.py: this bound undershoots
  # The learned reverse kernel tightened the bound well below the same-form kernel's.
  final = jax.tree.map(np.asarray, state['step_size']['params']['reverse'])
  learned_bound = closed_form(h, mu, np.full(5, learned),
                              [_expand(final[k]) for k in ('a', 'b', 'log_c')])[0]
  assert learned_bound < 0.5 * closed_form(h, mu, np.full(5, learned))[0]


def test_step_size_gradient_flows_through_the_chain():
  """Autodiff through the unrolled chain equals finite differences with the same noise, also
  for U(z_K) alone, whose only path to δ is the chain (a stop_gradient there zeroes it)."""
  for linear in (True, False):
    if linear:
      method, state, x, *_ = _linear()
    else:  # the hierarchical MLP generator (nonlinear: second derivatives of g)
      method = _method(_points_config(), (8,))
      state = method.init(jax.random.key(0), {'x': jnp.zeros((2, 8))})
      x = np.random.default_rng(0).normal(size=8)
    n = 2048
    xb = jnp.broadcast_to(jnp.asarray(x, jnp.float32), (n, 8))
    z0 = jax.random.normal(jax.random.key(4), (n, sum(DIMS)))
    params = state['step_size']['params']

    def objectives(log_delta):
      run = method.chain(state, xb, z0, jax.random.key(5), dict(params, log_delta=log_delta))
      return jnp.stack([jnp.mean(method.bound(run, z0, xb)), jnp.mean(run.energy)])

    at = jnp.log(jnp.float32(0.2))
    grads = np.asarray(jax.jacobian(objectives)(at))
    step = 1e-2
    fd = (np.asarray(objectives(at + step), np.float64)
          - np.asarray(objectives(at - step), np.float64)) / (2 * step)
    np.testing.assert_allclose(grads, fd, rtol=0.03, atol=1e-3 * np.abs(fd).max())
    assert abs(grads[1]) > 0.05 * abs(grads[0]) and abs(grads[1]) > 1e-3


def test_generator_gradient_is_that_of_the_complete_data_likelihood_at_the_inferred_z():
  method = _method(_points_config(), (8,))
  method.opt = optax.sgd(1.0)  # the parameter change is then minus the gradient
  rng = np.random.default_rng(0)
  batch = {'x': jnp.asarray(rng.normal(size=(16, 8)), jnp.float32),
           'index': jnp.arange(16, dtype=jnp.int32)}
  key = jax.random.key(5)
  state = method.init(jax.random.key(0), batch)
  state['generator']['opt_state'] = method.opt.init(state['generator']['params'])
  new_state, metrics = jax.jit(method.update)(state, batch, key)
  got = jax.tree.map(lambda a, b: a - b, state['generator']['params'],
                     new_state['generator']['params'])
  # Independently: the same chain (same keys, from the prior), then ∇θ of −log p(x, z) there.
  k_prior, k_chain = jax.random.split(key)
  z0 = jax.random.normal(k_prior, (16, sum(DIMS)))
  z = method.chain(state, batch['x'], z0, k_chain).position

  def neg_log_joint(params):
    x_gen = method.nets.generator.apply({'params': params}, z)
    sq = jnp.sum(jnp.square(batch['x'] - x_gen), -1)
    return jnp.mean(sq / (2 * SIGMA ** 2) + 0.5 * jnp.sum(jnp.square(z), -1))

  want = jax.grad(neg_log_joint)(state['generator']['params'])
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6 * float(jnp.max(jnp.abs(b))))
  # The step moved (its own optimiser), and the metrics name it.
  assert float(new_state['step_size']['params']['log_delta']) != float(
      state['step_size']['params']['log_delta'])
  assert {'loss', 'rec_mse', 'kl_bound', 'step_size'} <= set(metrics)
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_short_run_is_egm_langevin_and_inference_uses_the_learned_steps():
  method, state, x, *_ = _linear()
  xb = jnp.broadcast_to(jnp.asarray(x, jnp.float32), (64, 8))
  z0 = jax.random.normal(jax.random.key(1), (64, 5))
  energy = method.posterior_energy(state, xb)
  run = short_run(energy, z0, jax.random.key(2), jnp.full((K, 5), 0.3))
  z, _ = langevin(energy, z0, jax.random.key(2), n_steps=K, step_size=0.045, noise_scale=0.3)
  np.testing.assert_allclose(run.position, z, rtol=1e-5, atol=1e-5)
  for param, value in (('per_layer', jnp.log(jnp.array([0.2, 0.4]))),
                       ('per_step', jnp.log(jnp.linspace(0.1, 0.4, K)))):
    method, state, *_ = _linear(step_size_param=param)
    state['step_size']['params']['log_delta'] = value
    delta = method.step_sizes(state['step_size']['params'])
    run = short_run(method.posterior_energy(state, xb), z0, jax.random.key(2), delta)
    z, _ = method.run_inference(state, xb, z0, jax.random.key(2))
    np.testing.assert_allclose(run.position, z, rtol=1e-4, atol=1e-4)
    longer = method.step_sizes(state['step_size']['params'], K + 5)  # test_steps > K
    np.testing.assert_allclose(longer[K:], np.broadcast_to(delta[-1], (5, 5)))
    assert method.infer(state, xb, jax.random.key(3)).shape == (64, 5)


@pytest.mark.parametrize('param,names', [
    ('per_layer', {'step_size_layer0', 'step_size_layer1'}),
    ('per_step', {'step_size_first', 'step_size_mean', 'step_size_last'}),
])
def test_step_size_parameterisations_learn_and_log(param, names):
  method = _method(_points_config(step_size_param=param, test_steps=K + 4), (8,))
  batch = {'x': jnp.asarray(np.random.default_rng(0).normal(size=(16, 8)), jnp.float32),
           'index': jnp.arange(16, dtype=jnp.int32)}
  state = method.init(jax.random.key(0), batch)
  shape = (2,) if param == 'per_layer' else (K,)
  assert state['step_size']['params']['log_delta'].shape == shape
  new_state, metrics = jax.jit(method.update)(state, batch, jax.random.key(1))
  assert names <= set(metrics)
  assert np.all(np.asarray(new_state['step_size']['params']['log_delta'])
                != np.asarray(state['step_size']['params']['log_delta']))
  assert method.infer(new_state, batch['x'], jax.random.key(2)).shape == (16, 5)


def test_step_size_every_learns_on_every_nth_update_only():
  """With step_size_every=3 the step moves on updates 0 and 3 and stays put on 1, 2, 4; the
  chain (and so the generator's update) is the same as with the step learned every update."""
  batch = {'x': jnp.asarray(np.random.default_rng(0).normal(size=(16, 8)), jnp.float32),
           'index': jnp.arange(16, dtype=jnp.int32)}
  every, each = _method(_points_config(step_size_every=3), (8,)), _method(_points_config(), (8,))
  state = every.init(jax.random.key(0), batch)
  update, update_each = jax.jit(every.update), jax.jit(each.update)
  moved = []
  for i in range(5):
    key = jax.random.key(10 + i)
    new_state, metrics = update(state, batch, key)
    _, metrics_each = update_each(state, batch, key)
    np.testing.assert_allclose(metrics['kl_bound'], metrics_each['kl_bound'], rtol=1e-5)
    np.testing.assert_allclose(metrics['rec_mse'], metrics_each['rec_mse'], rtol=1e-5)
    moved.append(float(new_state['step_size']['params']['log_delta'])
                 != float(state['step_size']['params']['log_delta']))
    state = new_state
  assert moved == [True, False, False, True, False]


@pytest.mark.integration  # ~30 s on 2 loaded cores (eager init, one conv update compile)
def test_image_update_trains_the_hierarchical_generator():
  config = srinf_fashion.get_config('smoke')
  method = _method(config, (28, 28, 1))
  assert method.dims == (4, 4, 4)
  rng = np.random.default_rng(0)
  batch = {'x': jnp.asarray(rng.uniform(-1, 1, (8, 28, 28, 1)), jnp.float32),
           'index': jnp.arange(8, dtype=jnp.int32)}
  state = method.init(jax.random.key(0), batch)
  new_state, metrics = jax.jit(method.update)(state, batch, jax.random.key(1))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert float(new_state['step_size']['params']['log_delta']) != math.log(0.05)
  assert method.sample(new_state, jax.random.key(2), 3).shape == (3, 28, 28, 1)
  mask = jnp.ones((8, 28, 28, 1)).at[:, 7:21, 7:21].set(0.0)
  done = method.complete(new_state, batch['x'], mask, jax.random.key(3))
  np.testing.assert_array_equal(done * mask, batch['x'] * mask)


@pytest.mark.parametrize('key,value,match', [
    ('srinf.step_size', -0.05, 'srinf.step_size is -0.05'),
    ('srinf.n_steps', 0, 'srinf.n_steps is 0'),
    ('srinf.test_steps', -1, 'srinf.test_steps is -1'),
    ('srinf.step_size_every', 0, 'srinf.step_size_every is 0'),
    ('srinf.step_size_param', 'per_pixel', "srinf.step_size_param is 'per_pixel'"),
    ('srinf.reverse_kernel', 'none', "srinf.reverse_kernel is 'none'"),
    ('srinf.latent_dims', '64,x', "srinf.latent_dims is '64,x'"),
    ('srinf.latent_dims', '64,0', "srinf.latent_dims is '64,0'"),
    ('model.sigma', -0.15, 'model.sigma is -0.15'),
])
def test_bad_settings_name_the_key(key, value, match):
  config = srinf_cifar.get_config('smoke')
  section, leaf = key.split('.')
  config[section][leaf] = value
  with pytest.raises(EgmError, match=match):
    _method(config, (32, 32, 3))


def test_configs_and_smoke_shrink():
  for module, shape, layers in ((srinf_fashion, 28, 3), (srinf_cifar, 32, 5),
                                (srinf_celeba, 32, 5)):
    config = module.get_config()
    assert config.method == 'srinf' and config.data.image_size == shape
    assert len(config.srinf.latent_dims.split(',')) == layers
    smoke = module.get_config('smoke')
    assert smoke.srinf.n_steps == 3 and smoke.train.num_steps <= 10
    assert all(int(d) <= 4 for d in smoke.srinf.latent_dims.split(','))
  celeba = srinf_celeba.get_config('smoke')
  assert celeba.data.source == 'sklearn:digits' and celeba.data.image_size == 8
  assert srinf_celeba.get_config().data.source == 'tfds:celeb_a'
  assert srinf_celeba.get_config('image_size=64').data.image_size == 64


def test_trains_end_to_end_on_points(tmp_path):
  config = _points_config()
  config.data.max_examples = 64
  config.train.batch_size = 16
  config.train.num_steps = 4
  state = trainer.train(config, str(tmp_path / 'run'))
  assert int(state['step']) == 4 and 'per_example' not in state


def test_srinf_declares_what_it_implements():
  assert Srinf.capabilities == {'infer', 'generate', 'reconstruct', 'complete'}
  method = _method(_points_config(), (8,))
  assert has_capability(method, 'sample')
