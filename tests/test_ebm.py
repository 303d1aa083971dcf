"""The `ebm` method: short-run and persistent chains, the buffer, one jitted update."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ebm_toy2d
from egm.errors import EgmError
from egm.methods import DataSpec, make_method
from egm.sampling import langevin


def _method(**ebm):
  config = ebm_toy2d.get_config('smoke')
  config.ebm.update(ebm)
  return make_method(config, DataSpec.of((2,), global_batch=config.train.batch_size)), config


def test_persistent_buffer_rows_are_replaced_by_the_chains():
  method, config = _method(persistent=True, buffer_size=64, rejuvenation=0.0, n_steps=3)
  batch = {'x': jnp.zeros((16, 2))}
  state = method.init(jax.random.key(0), batch)
  assert state['buffer'].shape == (64, 2)
  new_state, metrics = jax.jit(method.update)(state, batch, jax.random.key(1))
  changed = np.any(np.asarray(new_state['buffer'] != state['buffer']), axis=1)
  assert changed.sum() == 16  # exactly the rows drawn for the batch
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_rejuvenation_fraction():
  method, _ = _method(persistent=True, buffer_size=20_000, rejuvenation=0.25)
  state = {'buffer': jnp.full((20_000, 2), 100.0)}  # far outside the noise range
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


def test_long_run_diagnostics_are_reported(tmp_path):
  from egm import experiment
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
