"""Training steps per second of each config's jitted update on synthetic batches (no data I/O)."""
import importlib
import time

import jax
import numpy as np

from egm.methods import DataSpec, make_method
from egm.run import experiment, parallel, trainer


def example_shape(config) -> tuple:
  """Per-example shape the config's data would have: (2,) for toy2d, else (S, S, C)."""
  if config.data.source.startswith('toy2d:'):
    return (2,)
  return (config.data.image_size, config.data.image_size, config.data.channels)


def synthetic_batch(shape, batch_size: int, seed: int = 0) -> dict:
  """Uniform [-1, 1] examples with integer labels and example indices (for methods that
  read them)."""
  rng = np.random.default_rng(seed)
  return {'x': rng.uniform(-1, 1, (batch_size, *shape)).astype(np.float32),
          'label': rng.integers(0, 10, batch_size).astype(np.int32),
          'index': np.arange(batch_size, dtype=np.int32)}


def load_config(path: str, arg: str):
  """`get_config(arg)` of configs/<name>.py."""
  name = path.removesuffix('.py').replace('/', '.')
  return importlib.import_module(name).get_config(arg)


def jitted_update(config, mesh):
  """`config`'s update jitted over `mesh` as the trainer jits it, on a synthetic batch of
  `config.train.batch_size`: (update, initial state, device batch, train key)."""
  shape = example_shape(config)
  batch_size = config.train.batch_size
  method = make_method(config, DataSpec.of(shape, 10 * batch_size, batch_size))
  batch = synthetic_batch(shape, batch_size)
  keys = experiment.run_keys(config.seed)
  example = {k: v[:2] for k, v in batch.items()}
  shardings = parallel.state_shardings(jax.eval_shape(method.init, keys['init'], example), mesh)
  state = jax.jit(method.init, out_shardings=shardings)(keys['init'], example)  # as the trainer
  update = trainer.jit_update(method.update_fn(0), mesh, shardings)
  return update, state, jax.device_put(batch, parallel.data_sharding(mesh)), keys['train']


def steps_per_second(config, mesh, max_seconds: float = 20.0, max_steps: int = 10) -> dict:
  """Compile seconds and steady-state steps/s of `config`'s update over `mesh`.

  Times at least one step after a warm-up step, and at most `max_steps` or `max_seconds`.
  """
  update, state, batch, key = jitted_update(config, mesh)
  start = time.perf_counter()
  state, metrics = update(state, batch, key)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  steps, start = 0, time.perf_counter()
  while steps < max_steps and (steps == 0 or time.perf_counter() - start < max_seconds):
    state, metrics = update(state, batch, key)
    jax.block_until_ready(metrics)
    steps += 1
  return {'compile_s': compile_s, 'steps_per_s': steps / (time.perf_counter() - start),
          'batch': config.train.batch_size}
