"""The training loop; it knows nothing about any method (DESIGN.md §3).

`update` is jitted once over the device mesh (batch sharded on `data`, state
replicated); the loop feeds batches, logs, writes sample grids and checkpoints,
resumes from the newest checkpoint and saves on SIGTERM.
"""
import os
import signal
import time

import jax
import numpy as np

from egm import data, experiment, parallel
from egm.checkpointing import Checkpointer
from egm.evaluation import images
from egm.metric_writer import MetricWriter


class _StopFlag:
  """Set by SIGTERM/SIGINT so the loop can checkpoint and exit cleanly."""

  def __init__(self):
    self.requested = False

  def __call__(self, signum, frame):
    del frame
    print(f'signal {signum}: saving a checkpoint and stopping', flush=True)
    self.requested = True


def save_samples(path: str, samples: np.ndarray, extent: float) -> None:
  """A PNG of samples: an image grid, or a scatter plot for 2-D points."""
  if samples.ndim == 2:
    images.save_points_png(path, samples, extent)
  else:
    images.save_image_grid(path, samples)


def jit_update(method, mesh):
  """`method.update` jitted once over `mesh`: (state, batch, train_key) -> (state, metrics).

  The batch is sharded on `data`, the state replicated and donated; the step's key is
  `fold_in(train_key, state['step'])`, made inside the program (no host work per step).
  """
  replicated = parallel.replicated(mesh)

  def train_step(state, batch, train_key):
    return method.update(state, batch, jax.random.fold_in(train_key, state['step']))

  return jax.jit(train_step, in_shardings=(replicated, parallel.data_sharding(mesh), replicated),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def train(config, workdir: str):
  """Trains `config` in `workdir` (resuming there if it holds a checkpoint); returns the state."""
  exp = experiment.build(config)
  is_main = jax.process_index() == 0
  if is_main:
    experiment.write_config(config, workdir)
  checkpoints = Checkpointer(workdir, config.train.keep_checkpoints)
  state = exp.init_state()
  start_step = checkpoints.latest_step() or 0
  if start_step:
    state = checkpoints.restore(state)
    print(f'resumed from step {start_step}', flush=True)

  replicated = parallel.replicated(exp.mesh)
  update = jit_update(exp.method, exp.mesh)
  sample = None
  if hasattr(exp.method, 'sample'):
    sample = jax.jit(exp.method.sample, static_argnums=2, out_shardings=replicated)
  batches = data.train_batches(
      exp.dataset.train, global_batch_size=config.train.batch_size, seed=config.seed,
      start_step=start_step, process_index=jax.process_index(),
      process_count=jax.process_count(), mask=config.data.mask,
      dequantize=config.data.dequantize, prefetch=config.data.prefetch)
  writer = MetricWriter(workdir, config.train.num_steps, enabled=is_main)
  keys = experiment.run_keys(config.seed)
  train_key = parallel.replicate(keys['train'], exp.mesh)  # once, not a transfer per step
  stop = _StopFlag()
  previous_handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
  step = start_step
  previous_metrics = None  # the step before the newest: at most two updates are ever queued
  deadline = time.monotonic() + 60 * config.train.max_minutes
  try:
    while step < config.train.num_steps and not stop.requested:
      if config.train.max_minutes > 0 and time.monotonic() > deadline:
        print(f'train.max_minutes={config.train.max_minutes} reached at step {step}: stopping',
              flush=True)
        break
      batch = parallel.global_batch(next(batches), exp.mesh)
      state, metrics = update(state, batch, train_key)
      # Asynchronous dispatch would otherwise let the loop run log_every updates ahead, and a
      # SIGTERM or train.max_minutes would wait for all of them.
      jax.block_until_ready(previous_metrics)
      previous_metrics = metrics
      step += 1
      if step % config.train.log_every == 0 or step == config.train.num_steps:
        writer.write(step, jax.device_get(metrics))
      # every process runs the sharded sample program
      if sample is not None and step % config.train.sample_every == 0:
        samples = np.asarray(jax.device_get(sample(state, keys['sample'], config.eval.num_samples)))
        if is_main:
          save_samples(os.path.join(workdir, 'samples', f'step_{step:08d}.png'), samples,
                       config.eval.grid_extent)
      if step % config.train.checkpoint_every == 0:
        checkpoints.save(step, state)
    if checkpoints.latest_step() != step:
      checkpoints.save(step, state)
  finally:
    for s, handler in previous_handlers.items():
      signal.signal(s, handler)
    writer.close()
    checkpoints.close()
    batches.close()
  return state
