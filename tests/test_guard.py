"""The divergence guard: each detector on synthetic metric streams (fires on a bad stream,
silent on healthy ones recorded from real short runs), learning rates lowered for a rollback,
and training runs driven to diverge by a learning rate far too large (ebm, triangle)."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import coopnets_toy2d, ebm_toy2d, triangle_toy2d
from egm import data
from egm.config import defaults
from egm.errors import EgmError
from egm.methods import contract, make_method, watch
from egm.run import experiment, guard, trainer
from egm.run.checkpointing import Checkpointer

LIMITS = defaults.base_config().guard


def _record(config, n_steps):
  """Host metrics of `n_steps` real updates of `config`'s method from its initial state."""
  exp = experiment.build(config)
  state = exp.method.init(jax.random.key(0), exp.example_batch())
  batches = data.train_batches(exp.dataset.train, global_batch_size=config.train.batch_size,
                               seed=0, prefetch=0)
  update = jax.jit(exp.method.update)
  stream = []
  for step in range(n_steps):
    batch = {k: jnp.asarray(v) for k, v in next(batches).items()}
    state, metrics = update(state, batch, jax.random.key(step))
    stream.append({k: float(v) for k, v in jax.device_get(metrics).items()})
  batches.close()
  return exp.method.watch, stream


def _images_ebm_config():
  """The image EBM (ConvNet, chains clamped to [-1, 1]) on 8x8 digits, shrunk."""
  config = ebm_toy2d.get_config('smoke')
  config.data.source, config.data.image_size, config.data.channels = 'sklearn:digits', 8, 1
  config.ebm.step_size, config.ebm.noise_scale, config.ebm.init_low = 1.0, 0.01, -1.0
  config.ebm.init_high, config.ebm.clamp = 1.0, True
  return config


@pytest.fixture(scope='module')
def healthy():
  """{name: (watch, stream)} of real updates at the configs' learning rates: ebm, triangle
  and coopnets on 8 Gaussians (the generators at width 64, 50 and 80 updates: enough to unfold
  from their initialisation), and a clamped image ebm on digits."""
  return {'ebm': _record(ebm_toy2d.get_config('smoke'), 30),
          'triangle': _record(triangle_toy2d.get_config('smoke,model.width=64'), 50),
          'coopnets': _record(coopnets_toy2d.get_config('smoke,model.width=64'), 80),
          'ebm_images': _record(_images_ebm_config(), 30)}


def _inject(stream, watch_, kind, start):
  """`stream` with failure `kind` from step index `start` on (a copy)."""
  bad = [dict(m) for m in stream]
  for i, m in enumerate(bad[start:]):
    grow = 10.0 ** (i + 1)
    if kind == 'non_finite':
      m['loss'] = math.nan
    elif kind == 'energy':  # energies running off to -1e7 and beyond, in step
      for name in watch_.energies:
        m[name] = -1e6 * grow
    elif kind == 'grad_norm':
      m[watch_.grad_norms[0]] = 1e7 * grow
    elif kind == 'energy_gap':  # the samples' energy leaves the data's (both stay < 1e5)
      m[watch_.energy_gap[1]] = m[watch_.energy_gap[0]] + 5e4
    elif kind == 'flat_energy':  # a constant energy: the same value on data and samples
      m[watch_.energy_gap[0]] = m[watch_.energy_gap[1]] = 0.731
    elif kind == 'clamp':
      m[watch_.clamp_fraction] = 0.9
    elif kind == 'collapse':  # every sample at nearly one point, and closing in
      m[watch_.spread] = 0.01 / grow
  return bad


def _first_finding(watch_, stream):
  """(index, Finding) of the first step a fresh Monitor flags, or (None, None)."""
  monitor = guard.Monitor(watch_, LIMITS)
  for i, metrics in enumerate(stream):
    finding = monitor(metrics)
    if finding is not None:
      return i, finding
  return None, None


def test_detectors_are_silent_on_healthy_runs(healthy):
  for name, (watch_, stream) in healthy.items():
    assert all(all(math.isfinite(v) for v in m.values()) for m in stream), name
    assert _first_finding(watch_, stream) == (None, None), name
  assert 'clamp_fraction' in healthy['ebm_images'][1][0]  # the clamped chains are watched


# (run, kinds): each kind applies to the run's method (what it watches).
CASES = [('ebm', ('non_finite', 'energy', 'grad_norm', 'energy_gap', 'flat_energy',
                  'collapse')),
         ('triangle', ('non_finite', 'energy', 'grad_norm', 'energy_gap', 'flat_energy',
                       'collapse')),
         ('coopnets', ('energy', 'energy_gap', 'collapse')),
         ('ebm_images', ('clamp',))]


@pytest.mark.parametrize('run,kinds', CASES, ids=[c[0] for c in CASES])
def test_each_detector_fires_where_its_failure_starts(healthy, run, kinds):
  watch_, stream = healthy[run]
  for kind in kinds:
    starts = (3, 17)
    if kind == 'collapse':  # after the spread first reached ten times guard.min_spread
      unfolded = next(i for i, m in enumerate(stream) if m[watch_.spread] >= 10 * LIMITS.min_spread)
      starts = (unfolded + 1, len(stream) - 3)
    for start in starts:
      i, finding = _first_finding(watch_, _inject(stream, watch_, kind, start))
      assert i == start and finding.kind == kind, (run, kind, start, i, finding)


def test_collapse_needs_the_spread_to_have_unfolded_first():
  """A generator still near its initialisation (spread 0.02 of the data's) is no collapse;
  the same spread after it reached the data's is."""
  watch_ = watch.Watch(spread='s')
  assert _first_finding(watch_, [{'s': 0.02}] * 5 + [{'s': 0.5}]) == (None, None)
  i, finding = _first_finding(watch_, [{'s': 0.02}, {'s': 0.5}, {'s': 0.9}, {'s': 0.02}])
  assert (i, finding.kind) == (3, 'collapse')


def test_watched_metrics_are_ones_the_updates_return(healthy):
  """Every watched metric is returned (the clamp fraction where chains are clamped)."""
  for name, (watch_, stream) in healthy.items():
    watched = set(watch_.energies) | set(watch_.grad_norms) | set(watch_.energy_gap or ())
    clamped = {watch_.clamp_fraction, watch_.data_clamp_fraction}
    watched |= {watch_.spread} | (clamped if name == 'ebm_images' else set())
    assert watched <= set(stream[0]), (name, watched - set(stream[0]))


def test_every_method_declares_known_kinds_and_existing_config_keys():
  config = defaults.base_config()
  for name, cls in contract.registered_methods().items():
    for kind, knobs in cls.watch.knobs.items():
      assert kind in watch.KINDS, (name, kind)
      for key in knobs + cls.watch.learning_rates:
        section, leaf = key.rsplit('.', 1)
        assert leaf in config[section], (name, key)


def test_spread_ratio_is_the_pairwise_distance_ratio():
  """sqrt(mean pairwise squared distance of x / that of y), against the O(B²) definition."""
  x, y = jax.random.normal(jax.random.key(0), (2, 50, 3, 4))
  def pairwise(a):
    a = np.asarray(a).reshape(len(a), -1)
    return np.mean(np.sum((a[:, None] - a[None]) ** 2, -1)) * len(a) / (len(a) - 1)
  assert float(watch.spread_ratio(x, 3 * y)) == pytest.approx(
      math.sqrt(pairwise(x) / pairwise(3 * y)), rel=1e-4)
  assert float(watch.spread_ratio(jnp.broadcast_to(x[:1], x.shape), y)) < 1e-5


def test_lowered_learning_rate_keeps_the_optimizer_state_and_scales_the_step():
  """The rebuilt method's Adam state has the same structure (the lr is not in it), and its
  first step from the same state moves the parameters 0.1 times as far (Adam's first step
  is lr·sign(g) elementwise, for |g| ≫ eps)."""
  config = ebm_toy2d.get_config('smoke')
  config.optim.grad_clip = 0.0
  exp = experiment.build(config)
  lowered = guard.scaled_learning_rates(config, ('ebm.optim.energy.lr',), 0.1)
  lr = config.ebm.optim.energy.lr
  assert lowered.ebm.optim.energy.lr == pytest.approx(0.1 * lr)
  assert lr == ebm_toy2d.get_config('smoke').ebm.optim.energy.lr  # a copy
  slow = make_method(lowered, exp.data_spec)
  state = exp.method.init(jax.random.key(0), exp.example_batch())
  assert jax.tree.structure(state) == jax.tree.structure(slow.init(jax.random.key(0),
                                                                   exp.example_batch()))
  batch = {'x': jnp.asarray(exp.dataset.train.get(np.arange(16))['x'])}
  moves = [jax.tree.map(lambda a, b: np.abs(np.asarray(a - b)),
                        jax.jit(m.update)(state, batch, jax.random.key(1))[0]['energy']['params'],
                        state['energy']['params'])
           for m in (exp.method, slow)]
  fast_moves, slow_moves = (np.concatenate([l.ravel() for l in jax.tree.leaves(m)])
                            for m in moves)
  moved = fast_moves > 0.5 * lr
  assert moved.mean() > 0.5
  np.testing.assert_allclose(slow_moves[moved], 0.1 * fast_moves[moved], rtol=1e-3)


def test_bad_guard_settings_name_the_key():
  config = ebm_toy2d.get_config('smoke')
  config.guard.policy = 'retry'
  config.guard.lr_factor = 2.0
  with pytest.raises(EgmError, match=r"guard.policy is 'retry'.*guard.lr_factor is 2.0"):
    guard.check_limits(config.guard)


# -- training driven to diverge ----------------------------------------------------------------

def _diverging(method, lr, **guard_settings):
  """A smoke config of `method` on 8 Gaussians with every learning rate at `lr`, checked
  every 2 steps (and before each checkpoint)."""
  config = {'ebm': ebm_toy2d, 'triangle': triangle_toy2d}[method].get_config('smoke')
  for network in config[method].optim.values():
    network.lr = lr
  config.train.num_steps, config.train.log_every = 12, 2
  config.train.checkpoint_every, config.train.sample_every = 2, 1000
  for key, value in guard_settings.items():
    config.guard[key] = value
  return config


def _events(workdir):
  return [r['guard'] for r in map(json.loads, open(workdir / 'metrics.jsonl')) if 'guard' in r]


def _restored_metrics(config, workdir, step):
  """The method's watch and the metrics of one update from the checkpoint of `step` (what a
  rerun would meet next)."""
  exp = experiment.build(config)
  checkpoints = Checkpointer(str(workdir))
  state = checkpoints.restore(exp.method.init(jax.random.key(0), exp.example_batch()), step)
  checkpoints.close()
  batch = {'x': jnp.asarray(exp.dataset.train.get(np.arange(16))['x'])}
  metrics = jax.jit(exp.method.update)(state, batch, jax.random.key(5))[1]
  return exp.method.watch, {k: float(v) for k, v in metrics.items()}


@pytest.mark.parametrize('method', ['ebm', 'triangle'])
def test_stop_policy_ends_with_a_diagnosis_and_keeps_no_bad_checkpoint(tmp_path, method):
  """Learning rates that grow 100-fold every 2 steps (1e-3, 0.1, 10, ...) are far too large
  from step 4 on: the run stops early naming the learning rate, the checkpoint of the state
  the failing metrics came from is deleted, and the newest one kept passes the checks."""
  config = _diverging(method, 1e-3, policy='stop')
  config.optim.decay_per_epoch, config.data.max_examples = 100.0, 32  # 2 steps per epoch
  config.train.checkpoint_every = 1
  with pytest.raises(guard.DivergenceError, match=r'at step \d+: .*likely knobs: ') as error:
    trainer.train(config, str(tmp_path))
  assert f'--config.{method}.optim.energy.lr' in str(error.value)
  (event,) = _events(tmp_path)
  assert event['action'] == 'stop' and event['message'] == str(error.value)
  step = json.loads(open(tmp_path / 'metrics.jsonl').readlines()[-1])['step']
  assert 4 < step < config.train.num_steps  # ended early, once the rate had grown
  assert event['deleted_checkpoints'] == [step - 1]
  kept = sorted(int(d.name) for d in (tmp_path / 'checkpoints').iterdir() if d.name.isdigit())
  assert kept and kept[-1] == event['restart_step'] == step - 2
  watch_, metrics = _restored_metrics(config, tmp_path, kept[-1])
  assert guard.Monitor(watch_, config.guard)(metrics) is None


def test_rollback_lowers_the_learning_rate_and_finishes(tmp_path, capsys):
  """ebm at lr 10: energies run off at step 2; one rollback to lr 0.1 and a new key, and the
  run finishes with finite metrics; a rerun keeps the lowered rate."""
  config = _diverging('ebm', 10.0, policy='rollback', lr_factor=0.01, max_rollbacks=2)
  trainer.train(config, str(tmp_path))
  events = _events(tmp_path)
  assert [e['action'] for e in events] == ['rollback']
  assert events[0]['learning_rates'] == {'ebm.optim.energy.lr': pytest.approx(0.1)}
  rows = [r for r in map(json.loads, open(tmp_path / 'metrics.jsonl')) if 'loss' in r]
  assert rows[-1]['step'] == 12 and all(math.isfinite(v) for v in rows[-1].values())
  assert all(abs(rows[-1][k]) < 1e3 for k in ('energy_data', 'energy_sample'))
  assert Checkpointer(str(tmp_path)).latest_step() == 12
  assert json.load(open(tmp_path / 'guard.json'))['rollbacks'] == 1
  assert 'Rollback 1 of 2 (guard.max_rollbacks): resuming from' in capsys.readouterr().out
  config.train.num_steps = 14
  trainer.train(config, str(tmp_path))
  assert '1 earlier rollback(s) in this workdir' in capsys.readouterr().out
  assert len(_events(tmp_path)) == 1


def test_rollback_stops_after_max_rollbacks(tmp_path):
  """triangle at lr 30 turns NaN at once; lowered to 9 it still does: one rollback, then a
  stop that says so."""
  config = _diverging('triangle', 30.0, policy='rollback', lr_factor=0.3, max_rollbacks=1)
  with pytest.raises(guard.NonFiniteDivergenceError, match=r'Stopped after 1 rollback'):
    trainer.train(config, str(tmp_path))
  events = _events(tmp_path)
  assert [e['action'] for e in events] == ['rollback', 'stop']
  assert events[0]['learning_rates'] == {f'triangle.optim.{n}.lr': pytest.approx(9.0)
                                         for n in ('energy', 'generator', 'encoder')}
  assert all(e['kind'] == 'non_finite' for e in events)
  for e in events:  # the event holds strict JSON: a non-finite value as a string
    assert isinstance(e['value'], str) or math.isfinite(e['value'])


def test_the_clamp_check_counts_only_what_the_data_leaves_off_the_bounds():
  """Digits sit at −1 on most pixels: chains at the clamp as often as the data are healthy;
  chains at the clamp on most of the coordinates the data leaves free are stuck."""
  watch_ = watch.Watch(clamp_fraction='c', data_clamp_fraction='d')
  monitor = lambda m: guard.stuck_at_clamp(m, watch_, LIMITS)
  assert monitor({'c': 0.55, 'd': 0.6}) is None
  assert monitor({'c': 0.75, 'd': 0.6}) is None  # 0.375 of the free coordinates
  finding = monitor({'c': 0.95, 'd': 0.6})
  assert finding.kind == 'clamp' and "against the data's 0.6" in finding.what
  assert monitor({'c': 0.9}) is not None  # without the data's fraction: the plain limit
