"""The training loop's jitted update: traced once, and no implicit host transfers per step."""
import chex
import jax
import numpy as np
import pytest

from configs import abp_fashion, ebm_toy2d, triangle_digits
from egm.methods import DataSpec, make_method
from egm.run import experiment, parallel, trainer


def _batches(shape, batch_size, n):
  rng = np.random.default_rng(0)
  return [{'x': rng.uniform(-1, 1, (batch_size, *shape)).astype(np.float32),
           'index': rng.permutation(4 * batch_size)[:batch_size].astype(np.int32)}
          for _ in range(n)]


@pytest.mark.parametrize('config_module,shape', [(ebm_toy2d, (2,)), (triangle_digits, (8, 8, 1)),
                                                 (abp_fashion, (28, 28, 1))])
def test_update_traces_once_and_makes_no_implicit_transfers(config_module, shape):
  config = config_module.get_config('smoke')
  batch_size = config.train.batch_size
  method = make_method(config, DataSpec.of(shape, 4 * batch_size, batch_size))
  mesh = parallel.make_mesh()
  keys = experiment.run_keys(config.seed)
  train_key = parallel.replicate(keys['train'], mesh)  # as the trainer does
  batches = _batches(shape, batch_size, 4)
  shardings = parallel.state_shardings(jax.eval_shape(method.init, keys['init'], batches[0]),
                                       mesh)
  state = jax.jit(method.init, out_shardings=shardings)(keys['init'], batches[0])
  update = trainer.jit_update(chex.assert_max_traces(method.update, n=1), mesh, shardings)
  state, _ = update(state, parallel.global_batch(batches[0], mesh), train_key)
  with jax.transfer_guard('disallow'):
    for batch in batches[1:]:
      # Batches are put on the devices explicitly, as the trainer does; nothing else moves.
      state, metrics = update(state, parallel.global_batch(batch, mesh), train_key)
    metrics = jax.device_get(metrics)
  assert int(jax.device_get(state['step'])) == len(batches)
  assert all(np.isfinite(v).all() for v in jax.tree.leaves(metrics))
