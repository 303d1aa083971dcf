"""The training loop; it knows nothing about any method (DESIGN.md §3).

`update` is jitted once per training phase over the device mesh (batch sharded on
`data`; state replicated except its `per_example` rows, sharded on `data`); the loop
feeds each phase's batches, logs, writes sample grids and checkpoints, resumes from the
newest checkpoint (in the phase it was written in) and saves on SIGTERM. The divergence
guard (egm/run/guard.py) checks the metrics fetched at log steps and, with the state, before
every checkpoint; it stops the run or rolls it back to the last good checkpoint.
"""
import dataclasses
import os
import signal
import time

import jax
import numpy as np

from egm import data
from egm.figures import images
from egm.methods import has_capability, make_method
from egm.run import experiment, parallel, phases
from egm.run.checkpointing import Checkpointer
from egm.run.guard import Guard
from egm.run.metric_writer import MetricWriter


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
    images.save_points_png(path, samples, extent, caption='model samples')
  else:
    images.save_image_grid(path, np.clip(samples, -1, 1), caption='model samples')


def write_sample_grid(exp, sample, state, step: int, workdir: str, key) -> None:
  """`samples/step_<step>.png` of `eval.num_samples` samples (every process runs the sharded
  sample program; process 0 writes)."""
  config = exp.config
  samples = np.asarray(jax.device_get(sample(state, key, config.eval.num_samples)))
  if jax.process_index() == 0:
    with images.figure_label(f'{config.method} on {exp.dataset.name}, step {step}'):
      save_samples(os.path.join(workdir, 'samples', f'step_{step:08d}.png'), samples,
                   config.eval.grid_extent)


def jit_update(update_fn, mesh, state_shardings):
  """`update_fn` jitted once over `mesh`: (state, batch, train_key) -> (state, metrics).

  The batch is sharded on `data`, the state laid out by `state_shardings` (per-example
  rows on `data`, the rest replicated) and donated; the step's key is
  `fold_in(train_key, state['step'])`, made inside the program (no host work per step).
  """
  replicated = parallel.replicated(mesh)

  def train_step(state, batch, train_key):
    return update_fn(state, batch, jax.random.fold_in(train_key, state['step']))

  return jax.jit(train_step, in_shardings=(state_shardings, parallel.data_sharding(mesh),
                                           replicated),
                 out_shardings=(state_shardings, replicated), donate_argnums=0)


class _PhaseBatches:
  """The training batches of one phase at its image size, counted from the phase start."""

  def __init__(self, exp, schedule, phase_index: int, step: int):
    config = exp.config
    self.size = schedule.image_sizes[phase_index]
    self.stream = data.train_batches(
        exp.dataset.train, global_batch_size=schedule.batch_sizes[phase_index],
        seed=config.seed, start_step=step - schedule.starts[phase_index],
        process_index=jax.process_index(), process_count=jax.process_count(),
        mask=config.data.mask, dequantize=config.data.dequantize, prefetch=config.data.prefetch)

  def __next__(self):
    return phases.downsample(next(self.stream), self.size)

  def close(self):
    self.stream.close()


class _Phases:
  """Per phase, once: the jitted update, the jitted sampler and the jitted transition into it."""

  def __init__(self, exp):
    self.exp = exp
    self.updates = {}
    self.samplers = {}

  def enter(self, state, phase_index: int):
    """The state entering `phase_index` from the previous phase's end."""
    key = self.exp.enter_key(phase_index)
    transition = lambda state, key: self.exp.method.enter_phase(state, phase_index, key)
    shapes = jax.eval_shape(transition, state, key)
    return jax.jit(transition, out_shardings=self.exp.state_shardings(shapes))(state, key)

  def update(self, state, phase_index: int):
    if phase_index not in self.updates:
      self.updates[phase_index] = jit_update(self.exp.method.update_fn(phase_index),
                                             self.exp.mesh, self.exp.state_shardings(state))
    return self.updates[phase_index]

  def sample(self, phase_index: int):
    """`sample` of the method in `phase_index`, jitted (replicated output), or None."""
    if not has_capability(self.exp.method, 'sample'):
      return None
    if phase_index not in self.samplers:
      self.samplers[phase_index] = jax.jit(self.exp.method.at_phase(phase_index).sample,
                                           static_argnums=2,
                                           out_shardings=parallel.replicated(self.exp.mesh))
    return self.samplers[phase_index]


def restore_newest(exp, checkpoints):
  """(state, step) of the newest checkpoint that reads back, restored into the state of the
  phase it was written in; (the initial state, 0) without one."""
  return checkpoints.restore_latest(lambda step: exp.state_template(exp.phase_of_state(step)),
                                    exp.init_state)


def with_config(exp, config):
  """`exp` with `config` and the method rebuilt from it (e.g. lowered learning rates; the
  state's structure, optimiser states included, is unchanged)."""
  return dataclasses.replace(exp, config=config, method=make_method(config, exp.data_spec))


def roll_back(exp, checkpoints):
  """`exp`'s state at its newest checkpoint (the initial state if none), compiled anew:
  (compiled phases, step, phase index, state)."""
  compiled = _Phases(exp)
  state, step = restore_newest(exp, checkpoints)
  return compiled, step, exp.phase_of_state(step), state


def describe(exp, workdir: str) -> str:
  """What the run resolved to, for the first lines of its output."""
  config, spec, dataset = exp.config, exp.data_spec, exp.dataset
  test = f' / {len(dataset.test):,} test' if dataset.test is not None else ''
  shape = 'x'.join(map(str, spec.x_shape))
  devices = jax.devices()
  counts = ', '.join(f'{name} {count:,}' for name, count in sorted(exp.parameter_counts().items()))
  return (f'method {config.method} on {dataset.name} ({config.data.source}): '
          f'{spec.num_examples:,} train{test} examples of shape {shape}\n'
          f'parameters: {counts}\n'
          f'{len(devices)} {devices[0].platform} device(s) in {jax.process_count()} process(es); '
          f'global batch {spec.global_batch} ({spec.steps_per_epoch:,} steps per epoch); '
          f'{config.train.num_steps:,} steps; workdir {os.path.abspath(workdir)}')


def train(config, workdir: str):
  """Trains `config` in `workdir` (resuming there if it holds a checkpoint); returns the state."""
  started = time.monotonic()
  exp = experiment.build(config)
  is_main = jax.process_index() == 0
  guard = Guard(config, workdir, exp.method.watch, is_main, parallel.replicated(exp.mesh))
  if guard.rollbacks:  # an earlier rollback of this run lowered its learning rates
    exp = with_config(exp, guard.config(config))
  if is_main:
    print(describe(exp, workdir), flush=True)
    if guard.rollbacks:
      print(f'guard: {guard.rollbacks} earlier rollback(s) in this workdir ({guard.path}): '
            f'learning rates x {guard.lr_scale:.4g}', flush=True)
  if is_main:
    experiment.write_config(config, workdir)
    experiment.write_data_spec(exp.data_spec, workdir)
  schedule = exp.schedule()
  for size in schedule.batch_sizes:
    parallel.check_batch_size(size, exp.mesh)
  checkpoints = Checkpointer(workdir, config.train.keep_checkpoints)
  compiled = _Phases(exp)
  state, start_step = restore_newest(exp, checkpoints)
  state_phase = exp.phase_of_state(start_step)
  if start_step:
    print(f'resumed from step {start_step} (phase {schedule.phases[state_phase].name})',
          flush=True)
  else:
    print('starting at step 0', flush=True)

  budget = config.train.max_minutes
  writer = MetricWriter(workdir, config.train.num_steps, enabled=is_main,
                        ends_at=time.time() + 60 * budget if budget > 0 else None)
  last_log = time.monotonic()
  keys = experiment.run_keys(config.seed)
  train_key = parallel.replicate(guard.train_key(keys['train']), exp.mesh)  # not per step
  stop = _StopFlag()
  previous_handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
  step = start_step
  guard.verified = start_step - 1  # the restored state is vouched for by the next passing check
  batch_phase, batches = None, None
  metrics = previous_metrics = None  # at most two updates are ever queued
  deadline = time.monotonic() + 60 * config.train.max_minutes
  try:
    while step < config.train.num_steps and not stop.requested:
      if config.train.max_minutes > 0 and time.monotonic() > deadline:
        print(f'train.max_minutes={config.train.max_minutes} reached at step {step}: stopping',
              flush=True)
        break
      phase_index = schedule.index(step)
      if phase_index != state_phase:
        state, state_phase = compiled.enter(state, phase_index), phase_index
        print(f'step {step}: phase {schedule.phases[phase_index].name}', flush=True)
      if phase_index != batch_phase:
        if batches is not None:
          batches.close()
        batches, batch_phase = _PhaseBatches(exp, schedule, phase_index, step), phase_index
      update = compiled.update(state, phase_index)
      batch = parallel.global_batch(next(batches), exp.mesh)
      state, metrics = update(state, batch, train_key)
      # Asynchronous dispatch would otherwise let the loop run log_every updates ahead, and a
      # SIGTERM or train.max_minutes would wait for all of them.
      jax.block_until_ready(previous_metrics)
      previous_metrics = metrics
      step += 1
      if step == start_step + 1:
        jax.block_until_ready(metrics)
        print(f'step {step}: the first update compiled and ran in '
              f'{time.monotonic() - started:.1f} s since start', flush=True)
        writer.start(step)
      log = (step % config.train.log_every == 0 or step == config.train.num_steps
             or time.monotonic() - last_log >= config.train.log_seconds)
      save = step % config.train.checkpoint_every == 0
      if log or save:
        host_metrics = jax.device_get(metrics)
        finding = guard.check(step, host_metrics, state if save else None)
        if finding is not None:  # stops (raises), or rolls back:
          guard.handle(step, finding, config, writer, checkpoints)
          exp = with_config(exp, guard.config(config))
          compiled, step, state_phase, state = roll_back(exp, checkpoints)
          train_key = parallel.replicate(guard.train_key(keys['train']), exp.mesh)
          batches.close()
          batch_phase, batches, metrics, previous_metrics = None, None, None, None
          writer.start(step)
          continue
        if log:
          writer.write(step, host_metrics)
          last_log = time.monotonic()
      sample = compiled.sample(state_phase)
      if sample is not None and step % config.train.sample_every == 0:
        write_sample_grid(exp, sample, state, step, workdir, keys['sample'])
      if save:
        checkpoints.save(step, state)
    finding = None
    if checkpoints.latest_step() != step and metrics is not None:
      finding = guard.check(step, jax.device_get(metrics), state)
    if finding is not None:  # stopped between checks: no checkpoint; a rerun resumes
      guard.handle(step, finding, config, writer, checkpoints)
      return state
    sample = compiled.sample(state_phase)
    if (sample is not None and step > start_step and step % config.train.sample_every
        and not stop.requested):  # the end of the run or of its budget: its last grid
      write_sample_grid(exp, sample, state, step, workdir, keys['sample'])
    if checkpoints.latest_step() != step:
      checkpoints.save(step, state)
    if is_main:
      print(f'checkpoint of step {step} in {checkpoints.directory}/{step}\n'
            f'evaluate it with: python eval.py --workdir {workdir}', flush=True)
  finally:
    for s, handler in previous_handlers.items():
      signal.signal(s, handler)
    writer.close()
    checkpoints.close()
    if batches is not None:
      batches.close()
  return state
