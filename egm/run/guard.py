"""The divergence guard: detectors over logged metrics, and the stop / rollback policy.

Each detector reads one host dict of a step's metrics (those the trainer fetches at log
steps and before every checkpoint) and the method's `Watch` (egm/methods/watch.py), and
returns a `Finding` or None. `Guard` applies `config.guard`: `stop` raises a
`DivergenceError` whose message names the likely config keys; `rollback` records the event,
lowers the learning rates by `guard.lr_factor` and changes the training key (the trainer
then restores the last good checkpoint), up to `guard.max_rollbacks` times, then stops.

The metrics of step s are computed from the state after step s − 1, so a state is vouched
for only by a later check that passes; on a finding, the checkpoints newer than the last
vouched-for state are deleted, and that is where a rollback (or a rerun) resumes.
The rollbacks so far are kept in `<workdir>/guard.json`, so a resumed run keeps its
lowered learning rates and key.
"""
import copy
import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp

from egm.errors import EgmError
from egm.methods import optim
from egm.methods.watch import Watch
from egm.run.metric_writer import NonFiniteLossError

POLICIES = ('stop', 'rollback', 'off')


class DivergenceError(EgmError):
  """Training diverged: the message names the failure, the step and the likely knobs."""


class NonFiniteDivergenceError(DivergenceError, NonFiniteLossError):
  """A metric or the state became NaN or Inf."""


@dataclasses.dataclass(frozen=True)
class Finding:
  """One failed check: `kind` (watch.KINDS), the `metric` and its `value`, and what it means."""
  kind: str
  metric: str
  value: float
  what: str


def non_finite(metrics, watch, limits):
  """Any metric NaN or Inf (watched or not)."""
  del watch, limits
  bad = sorted(name for name, v in metrics.items() if not math.isfinite(v))
  if bad:
    return Finding('non_finite', bad[0], metrics[bad[0]],
                   f'non-finite value of {", ".join(bad)}')  # NonFiniteLossError's words


def energy_explosion(metrics, watch, limits):
  """A watched mean energy beyond ±guard.max_abs_energy."""
  for name in watch.energies:
    if name in metrics and abs(metrics[name]) > limits.max_abs_energy:
      return Finding('energy', name, metrics[name],
                     f'the energy is exploding (|{name}| > guard.max_abs_energy = '
                     f'{limits.max_abs_energy:g})')


def gradient_explosion(metrics, watch, limits):
  """A watched gradient norm above guard.max_grad_norm."""
  for name in watch.grad_norms:
    if name in metrics and metrics[name] > limits.max_grad_norm:
      return Finding('grad_norm', name, metrics[name],
                     f'a gradient norm is exploding ({name} > guard.max_grad_norm = '
                     f'{limits.max_grad_norm:g})')


def _gap(metrics, watch):
  """(E(data) − E(samples), max(1, |E(data)|, |E(samples)|)), or None if not watched."""
  if watch.energy_gap is None or not all(n in metrics for n in watch.energy_gap):
    return None
  data, sample = (metrics[n] for n in watch.energy_gap)
  return data - sample, max(1.0, abs(data), abs(sample))


def gap_blow_up(metrics, watch, limits):
  """|E(data) − E(samples)| above guard.max_energy_gap."""
  gap = _gap(metrics, watch)
  if gap is not None and abs(gap[0]) > limits.max_energy_gap:
    return Finding('energy_gap', '-'.join(watch.energy_gap), gap[0],
                   f'the data/sample energy gap has blown up (|{" − ".join(watch.energy_gap)}| '
                   f'> guard.max_energy_gap = {limits.max_energy_gap:g})')


def flat_energy(metrics, watch, limits):
  """|E(data) − E(samples)| below guard.min_relative_gap·max(1, |E|): a constant energy."""
  gap = _gap(metrics, watch)
  if gap is not None and abs(gap[0]) < limits.min_relative_gap * gap[1]:
    return Finding('flat_energy', '-'.join(watch.energy_gap), gap[0],
                   'the data/sample energy gap has collapsed: the energy no longer tells data '
                   f'from samples (|gap| < guard.min_relative_gap = {limits.min_relative_gap:g} '
                   'of |E|)')


def stuck_at_clamp(metrics, watch, limits):
  """More than guard.max_clamp_fraction of the chain coordinates that the data leaves off
  the clamp's bounds are at the clamp: (c − d)/(1 − d) > the limit, c the chains' fraction
  at the bounds and d the data's own (`watch.data_clamp_fraction`; 0 where not watched), so
  data with saturated backgrounds (digits at −1) do not count as stuck chains."""
  name = watch.clamp_fraction
  if not (name and name in metrics):
    return None
  data = min(metrics.get(watch.data_clamp_fraction, 0.0), 1.0)
  excess = (metrics[name] - data) / (1.0 - data) if data < 1.0 else 0.0
  if excess > limits.max_clamp_fraction:
    return Finding('clamp', name, metrics[name],
                   f'the chains are stuck at the clamp ({name} {metrics[name]:.3g} against '
                   f"the data's {data:.3g}: {excess:.3g} of the coordinates the data leaves free "
                   f'> guard.max_clamp_fraction = {limits.max_clamp_fraction:g})')
  return None


def sample_collapse(metrics, watch, limits, peak_spread):
  """Fires when the spread falls under guard.min_spread after having reached ten times it
  (`peak_spread`: the largest seen before), so a generator still unfolding from its
  initialisation is not a collapse."""
  name = watch.spread
  if (name and name in metrics and metrics[name] < limits.min_spread
      and peak_spread >= 10 * limits.min_spread):
    return Finding('collapse', name, metrics[name],
                   f'the samples have collapsed towards one point ({name}, their spread over '
                   f"the data's, fell under guard.min_spread = {limits.min_spread:g} from "
                   f'{peak_spread:.3g})')


# In order of precedence: a NaN explains everything after it.
DETECTORS = (non_finite, energy_explosion, gradient_explosion, gap_blow_up, flat_energy,
             stuck_at_clamp)


class Monitor:
  """The detectors over one run's stream of metrics; it remembers the peak spread."""

  def __init__(self, watch: Watch, limits):
    self.watch, self.limits = watch, limits
    self.peak_spread = 0.0

  def __call__(self, metrics: dict) -> Finding | None:
    """The first failed check of the next `metrics` ({name: float}) of the stream."""
    for detector in DETECTORS:
      finding = detector(metrics, self.watch, self.limits)
      if finding is not None:
        return finding
    finding = sample_collapse(metrics, self.watch, self.limits, self.peak_spread)
    spread = metrics.get(self.watch.spread, 0.0)
    self.peak_spread = max(self.peak_spread, spread)
    return finding


def check_limits(limits) -> None:
  """Raises EgmError naming the `config.guard` key that cannot work."""
  problems = []
  if limits.policy not in POLICIES:
    problems.append(f'guard.policy is {limits.policy!r}: one of {", ".join(POLICIES)}')
  if not 0 < limits.lr_factor < 1:
    problems.append(f'guard.lr_factor is {limits.lr_factor}: a factor in (0, 1), e.g. 0.3')
  if int(limits.max_rollbacks) != limits.max_rollbacks or limits.max_rollbacks < 0:
    problems.append(f'guard.max_rollbacks is {limits.max_rollbacks}: a whole number >= 0')
  for key in ('max_abs_energy', 'max_grad_norm', 'max_energy_gap'):
    if not limits[key] > 0:
      problems.append(f'guard.{key} is {limits[key]}: a limit > 0')
  if problems:
    raise EgmError('Bad guard settings: ' + '; '.join(problems) +
                   '. Fix them with --config.guard.<key>=<value>.')


def learning_rate_keys(config, watch: Watch) -> tuple[str, ...]:
  """The dotted keys of the learning rates a rollback lowers (watch's, else those of every
  network of the method, `<method>.optim.<network>.lr`)."""
  return watch.learning_rates or optim.learning_rate_keys(config)


def _get(config, dotted: str):
  return optim.value(config, dotted)


def scaled_learning_rates(config, keys, scale: float):
  """A copy of `config` with each dotted key of `keys` multiplied by `scale` (an unset
  per-network lr becomes the shared one times `scale`)."""
  scaled = copy.deepcopy(config)
  for dotted in keys:
    optim.set_value(scaled, dotted, optim.value(config, dotted) * scale)
  return scaled


def state_is_finite(state):
  """Whether every floating-point leaf of `state` is finite: a scalar bool array."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(state)
            if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


class Guard:
  """`config.guard` applied to one run in `workdir`, with the rollbacks it has made."""

  def __init__(self, config, workdir: str, watch: Watch, is_main: bool = True, sharding=None):
    """`watch`: the method's; `sharding`: where the state check's scalar lands (replicated)."""
    check_limits(config.guard)
    self._state_is_finite = jax.jit(state_is_finite, out_shardings=sharding)
    self.limits = config.guard
    self.watch = watch
    self.monitor = Monitor(watch, config.guard)
    self.path = os.path.join(workdir, 'guard.json')
    self.is_main = is_main
    self.verified = -1  # the newest step whose state a passing check has vouched for
    self.rollbacks = 0
    if os.path.exists(self.path):
      with open(self.path) as f:
        self.rollbacks = int(json.load(f)['rollbacks'])

  @property
  def lr_scale(self) -> float:
    """What the learning rates of the config are multiplied by after the rollbacks so far."""
    return self.limits.lr_factor ** self.rollbacks

  def config(self, config):
    """`config` with its learning rates lowered for the rollbacks so far."""
    if not self.rollbacks:
      return config
    return scaled_learning_rates(config, learning_rate_keys(config, self.watch), self.lr_scale)

  def train_key(self, key):
    """The run's training key; a new one after each rollback."""
    return jax.random.fold_in(key, self.rollbacks) if self.rollbacks else key

  def check(self, step: int, metrics: dict, state=None) -> Finding | None:
    """The first failed check of host `metrics` of `step`, then (if given) of the finiteness
    of the state after `step`; a pass vouches for the state after step − 1."""
    if self.limits.policy == 'off':
      return None
    finding = self.monitor({k: float(v) for k, v in metrics.items()})
    if finding is None and state is not None and not bool(self._state_is_finite(state)):
      finding = Finding('non_finite', 'state', math.nan, 'the state holds NaN or Inf')
    if finding is None:
      self.verified = max(self.verified, step - 1)
    return finding

  def handle(self, step: int, finding: Finding, config, writer, checkpoints) -> int:
    """Deletes the checkpoints newer than the last vouched-for state, logs and prints the
    event, and raises DivergenceError unless the policy rolls back.

    `config`: the run's config as given (before any rollback lowered its learning rates).
    Returns the step to resume from (the newest checkpoint left, 0: the initial state), with
    `self.config(...)` and `self.train_key(...)`, both changed.
    """
    restart_step = max((s for s in checkpoints.all_steps() if s <= self.verified), default=0)
    dropped = checkpoints.delete_after(restart_step)
    self.verified = restart_step
    watch = self.watch
    message = diagnosis(step, finding, self.config(config), watch)
    rollback = self.limits.policy == 'rollback' and self.rollbacks < self.limits.max_rollbacks
    if rollback:
      self.rollbacks += 1
      if self.is_main:
        with open(self.path, 'w') as f:
          json.dump({'rollbacks': self.rollbacks, 'lr_scale': self.lr_scale}, f)
    lowered = self.config(config)
    learning_rates = {k: _get(lowered, k) for k in learning_rate_keys(config, watch)}
    good = f'step {restart_step}' if restart_step else 'the initial state (no checkpoint yet)'
    if dropped:
      message += (f' Deleted the checkpoints of steps {dropped}: no later check vouched for '
                  'their states.')
    if rollback:
      rates = ', '.join(f'{k}={_shown(v)}' for k, v in learning_rates.items())
      message += (f' Rollback {self.rollbacks} of {self.limits.max_rollbacks} '
                  f'(guard.max_rollbacks): resuming from {good} with {rates} and a new key.')
    elif self.limits.policy == 'rollback':
      message += (f' Stopped after {self.rollbacks} rollback(s) (guard.max_rollbacks = '
                  f'{self.limits.max_rollbacks}); the last good state is {good}.')
    else:
      message += (f' The last good state is {good}; --config.guard.policy=rollback restarts '
                  'from it with lower learning rates instead.')
    value = finding.value if math.isfinite(finding.value) else str(finding.value)  # strict JSON
    writer.event(step, 'guard', {
        'kind': finding.kind, 'metric': finding.metric, 'value': value,
        'action': 'rollback' if rollback else 'stop', 'rollbacks': self.rollbacks,
        'restart_step': restart_step, 'deleted_checkpoints': dropped,
        'learning_rates': learning_rates, 'message': message})
    print(f'guard: {message}', flush=True)
    if not rollback:
      error = NonFiniteDivergenceError if finding.kind == 'non_finite' else DivergenceError
      raise error(message)
    return restart_step


def _shown(value) -> str:
  return f'{value:.4g}' if isinstance(value, float) else str(value)


def diagnosis(step: int, finding: Finding, config, watch: Watch) -> str:
  """What failed at `step` and the config keys (with their values) most likely to blame."""
  knobs = watch.knobs.get(finding.kind) or learning_rate_keys(config, watch)
  named = ', '.join(f'--config.{k} (now {_shown(_get(config, k))})' for k in knobs)
  what = finding.what[0].upper() + finding.what[1:]
  return (f'{what} at step {step}: {finding.metric} = {finding.value:.4g}. Training has '
          f'diverged; the likely knobs: {named}.')
