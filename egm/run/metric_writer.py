"""Logged scalars go to stdout, `metrics.jsonl` and TensorBoard, after a NaN/Inf guard."""
import json
import math
import os
import time

import numpy as np
from tensorboardX import SummaryWriter

from egm.errors import EgmError


class NonFiniteLossError(EgmError):
  """A logged value became NaN or Inf: training stops before writing a bad checkpoint."""


class MetricWriter:
  """Writes one JSON object per logged step and TensorBoard scalars; prints progress and ETA
  (the time to `total_steps`, or to `ends_at`, the end of a time budget in `time.time()`
  seconds, when that comes first)."""

  def __init__(self, workdir: str, total_steps: int, enabled: bool = True,
               ends_at: float | None = None):
    self.total_steps = total_steps
    self.ends_at = ends_at
    self.enabled = enabled
    self._last = None  # (time, step) of the previous log line
    self._opened = time.time()
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      self.jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
      self.tensorboard = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def start(self, step: int) -> None:
    """Counts steps/s and the ETA from `step` (the first update, once compiled) on."""
    self._last = (time.time(), step)

  def write(self, step: int, metrics: dict) -> None:
    """Logs host scalars for `step`; raises NonFiniteLossError on NaN/Inf."""
    values = {name: float(np.asarray(v)) for name, v in metrics.items()}
    bad = sorted(name for name, v in values.items() if not math.isfinite(v))
    if bad:
      raise NonFiniteLossError(
          f'Non-finite value of {", ".join(bad)} at step {step}: training stopped, and the last '
          'checkpoint (if any) is from before this point. Lower the learning rates '
          '(--config.<method>.optim.<network>.lr), clip gradients harder '
          '(--config.optim.grad_clip), or check the data for NaN.')
    now = time.time()
    if self._last is not None:
      t0, s0 = self._last
      values['steps_per_sec'] = (step - s0) / max(now - t0, 1e-9)
    self._last = (now, step)
    if not self.enabled:
      return
    self.jsonl.write(json.dumps({'step': step, **values}) + '\n')
    self.jsonl.flush()
    for name, v in values.items():
      self.tensorboard.add_scalar(name, v, step)
    self.tensorboard.flush()
    eta = self._eta(step, values.get('steps_per_sec'), now)
    shown = '  '.join(f'{k} {v:.4g}' for k, v in values.items())
    elapsed = _duration(now - self._opened)
    print(f'step {step}/{self.total_steps}  elapsed {elapsed}  {shown}{eta}', flush=True)

  def _eta(self, step: int, rate, now: float) -> str:
    """'  eta ...' to the last step at `rate`, or to the budget's end when that comes first."""
    if not rate:
      return ''
    to_end = (self.total_steps - step) / rate
    if self.ends_at is not None and self.ends_at - now < to_end:
      left = max(self.ends_at - now, 0.0)
      return (f'  eta {_duration(left)} (train.max_minutes; about step '
              f'{min(self.total_steps, step + int(left * rate))})')
    return f'  eta {_duration(to_end)}'

  def event(self, step: int, name: str, record: dict) -> None:
    """Logs an event as `{"step": step, name: record}` in metrics.jsonl (a nested object,
    so readers of scalar series skip it)."""
    if self.enabled:
      self.jsonl.write(json.dumps({'step': step, name: record}) + '\n')
      self.jsonl.flush()

  def close(self) -> None:
    if self.enabled:
      self.jsonl.close()
      self.tensorboard.close()


def _duration(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s'
