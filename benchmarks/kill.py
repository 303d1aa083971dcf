"""SIGKILL a real training run at random moments, many times: every rerun resumes from the newest
checkpoint, intact, and the run ends where an uninterrupted one does.

    python -m benchmarks.kill [--kills 50] [--window 4] [--extra_steps 20] [--seed 0]

`train.py --config configs/ebm_toy2d.py:smoke` runs as a subprocess with a checkpoint after
every step (so that many kills land inside a checkpoint write). Each attempt is SIGKILLed
after a delay drawn uniformly from [0, S + window] seconds, S the start-up time (launch to the
first update) measured on the attempts so far -- a kill in the imports, the compile, the
restore, an update or a checkpoint write; the first attempt, which measures S, is killed
within `window` seconds of its first update -- and rerun, until `kills` kills; a last attempt
trains `extra_steps` past the newest checkpoint, and an uninterrupted reference run trains as
many steps from scratch. After every kill the checkpoints are read back with orbax's own
StandardCheckpointer (not egm's restore). Reported: per kill the step reached, the step the
rerun resumed from, the steps lost, whether a checkpoint write was cut (its temporary directory
left behind), the checkpoints that did not read back, and whether the final state equals the
reference run's bit for bit.
"""
import argparse
import dataclasses
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNREACHED = 10 ** 9  # train.num_steps of the attempts that are killed


@dataclasses.dataclass
class Attempt:
  """One launch of train.py: when it was killed (None: ran to its end) and what it printed."""
  delay: float | None
  returncode: int = 0
  start_step: int | None = None  # the step it resumed from (0: started afresh)
  reached: int | None = None  # the last step it printed (the update of that step is done)
  first_update_s: float | None = None  # seconds from launch to its first update
  fell_back: bool = False  # it warned that a checkpoint was corrupt and used an older one
  newest_after: int | None = None  # the newest complete checkpoint after it ended
  cut_write: bool = False  # it left a partial checkpoint write behind
  unreadable: tuple = ()  # complete checkpoints that did not read back after it ended
  output: str = ''
  seconds: float = 0.0  # launch to exit


def train_command(workdir: str, num_steps: int, config: str) -> list[str]:
  """train.py on `config` with a checkpoint and a log line after every step, no sample grids."""
  return [sys.executable, '-u', 'train.py', '--config', config, '--workdir', workdir,
          f'--config.train.num_steps={num_steps}', '--config.train.checkpoint_every=1',
          '--config.train.log_every=1', '--config.train.sample_every=1000000000',
          '--config.train.keep_checkpoints=3']


def child_env() -> dict:
  """The environment of the training processes: one CPU device."""
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  flags = re.sub(r'--xla_force_host_platform_device_count=\d+', '', env.get('XLA_FLAGS', ''))
  env['XLA_FLAGS'] = (flags + ' --xla_force_host_platform_device_count=1').strip()
  return env


def run_attempt(command, delay=None, delay_from_first_update=False) -> Attempt:
  """Runs `command`; SIGKILLs it `delay` seconds after its launch (or after its first update)."""
  attempt = Attempt(delay)
  lines, first_update = [], threading.Event()
  started = time.monotonic()
  proc = subprocess.Popen(command, cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)

  def read():
    for line in proc.stdout:
      lines.append(line)
      if line.startswith('step ') and ': the first update' in line:
        attempt.first_update_s = time.monotonic() - started
        first_update.set()

  reader = threading.Thread(target=read, daemon=True)
  reader.start()
  if delay is not None:
    if delay_from_first_update:
      while not first_update.wait(0.05) and proc.poll() is None:
        pass
    origin = time.monotonic() if delay_from_first_update else started
    try:
      proc.wait(timeout=max(delay - (time.monotonic() - origin), 0))
      attempt.delay = None  # it ended before the kill
    except subprocess.TimeoutExpired:
      os.kill(proc.pid, signal.SIGKILL)
  attempt.returncode = proc.wait()
  attempt.seconds = time.monotonic() - started
  reader.join()
  attempt.output = ''.join(lines)
  resumed = re.search(r'^resumed from step (\d+)', attempt.output, re.M)
  if resumed or re.search(r'^starting at step 0', attempt.output, re.M):
    attempt.start_step = int(resumed.group(1)) if resumed else 0
  steps = [int(s) for s in re.findall(r'^step (\d+)/', attempt.output, re.M)]
  attempt.reached = max(steps) if steps else attempt.start_step
  attempt.fell_back = 'warning: The checkpoint of step' in attempt.output
  return attempt


def read_back(step_dir: str):
  """The arrays of one checkpoint directory, read with orbax's StandardCheckpointer."""
  with ocp.StandardCheckpointer() as checkpointer:
    return checkpointer.restore(os.path.join(step_dir, 'default'))


def partial_writes(workdir: str) -> set:
  """The temporary directories of unfinished checkpoint writes, as (name, inode, mtime)."""
  directory = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(directory):
    return set()
  return {(e.name, e.inode(), e.stat().st_mtime_ns) for e in os.scandir(directory)
          if '.orbax-checkpoint-tmp' in e.name}


def inspect_checkpoints(workdir: str, attempt: Attempt, partial_before: set) -> None:
  """Fills `attempt`'s newest_after, cut_write (a partial write it left, not one found in
  `partial_before`) and unreadable from `workdir`'s checkpoints."""
  directory = os.path.join(workdir, 'checkpoints')
  names = os.listdir(directory) if os.path.isdir(directory) else []
  steps = sorted(int(n) for n in names if n.isdigit())
  attempt.cut_write = bool(partial_writes(workdir) - partial_before)
  unreadable = []
  for step in steps:
    try:
      read_back(os.path.join(directory, str(step)))
    except Exception:  # noqa: BLE001  (any failure to read back counts)
      unreadable.append(step)
  attempt.unreadable = tuple(unreadable)
  attempt.newest_after = steps[-1] if steps else None


def same_arrays(a, b) -> bool:
  """Whether two restored pytrees hold bitwise-equal arrays."""
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y))
                                    for x, y in zip(la, lb))


def campaign(workdir: str, kills: int, window: float, seed: int, config: str,
             extra_steps: int = 20, delay_from_first_update: bool = False):
  """Kills and reruns training in `workdir` until `kills` kills, then runs it to its end.

  The killed attempts train towards a step count they never reach; the last one trains to
  `extra_steps` past the newest checkpoint (train.num_steps may change between runs of a
  workdir). Delays are uniform on [0, S + window] seconds from launch, S the median start-up
  seen so far, or on [0, window] from the first update (always, or until S is measured).
  Returns (attempts, the final num_steps).
  """
  rng = random.Random(seed)
  attempts, startups = [], []
  while len(attempts) < kills:
    from_first = delay_from_first_update or not startups  # until S is measured once
    span = window if from_first else np.median(startups) + window
    before = partial_writes(workdir)
    attempt = run_attempt(train_command(workdir, UNREACHED, config), rng.uniform(0, span),
                          from_first)
    inspect_checkpoints(workdir, attempt, before)
    if attempt.delay is None:
      raise RuntimeError(f'an attempt ended before its kill:\n{attempt.output[-3000:]}')
    attempts.append(attempt)
    startups += [attempt.first_update_s] if attempt.first_update_s else []
    print(f'kill {len(attempts)}: after {attempt.delay:.2f} s, started at step '
          f'{attempt.start_step}, reached {attempt.reached}, newest checkpoint '
          f'{attempt.newest_after}, cut a write: {attempt.cut_write}, unreadable: '
          f'{list(attempt.unreadable)}, fell back: {attempt.fell_back} '
          f'({attempt.seconds:.0f} s)', flush=True)
  num_steps = (attempts[-1].newest_after or 0) + extra_steps
  before = partial_writes(workdir)
  attempts.append(run_attempt(train_command(workdir, num_steps, config)))
  inspect_checkpoints(workdir, attempts[-1], before)
  return attempts, num_steps


def steps_lost(killed, rerun) -> int:
  """Updates the kill undid: from the step `killed` reached back to where the next run resumed
  (where that run was itself killed before it resumed, to the newest checkpoint, which a later
  run resumes from and the totals check); 0 for a kill before the first update."""
  if killed.reached is None:
    return 0
  resumed = rerun.start_step if rerun.start_step is not None else (killed.newest_after or 0)
  return killed.reached - resumed


def kill_rows(attempts) -> list[dict]:
  """Per kill: the step reached, where the rerun resumed, steps lost, what the kill cut."""
  rows = []
  for killed, rerun in zip(attempts, attempts[1:]):
    if killed.delay is None:
      continue
    trained = None not in (killed.reached, killed.start_step) and \
        killed.reached > killed.start_step
    rows.append({
        'delay_s': killed.delay, 'reached': killed.reached,
        'newest_checkpoint': killed.newest_after, 'resumed_from': rerun.start_step,
        'lost': steps_lost(killed, rerun),
        'moment': ('checkpoint write' if killed.cut_write else
                   'training' if trained else 'start-up (imports, compile, restore)'),
        'resumed_newest': rerun.start_step == (killed.newest_after or 0),
        'unreadable': killed.unreadable})
  return rows


def summary(rows, attempts, num_steps: int, final_matches) -> dict:
  """The figures the README reports."""
  lost = [r['lost'] for r in rows]
  last = attempts[-1]
  return {
      'kills': len(rows),
      'kills during a checkpoint write': sum(r['moment'] == 'checkpoint write' for r in rows),
      'kills during training (outside writes)': sum(r['moment'] == 'training' for r in rows),
      'kills during start-up': sum(r['moment'].startswith('start-up') for r in rows),
      'reruns that resumed from the newest checkpoint':
          f'{sum(r["resumed_newest"] for r in rows)}/{len(rows)}',
      'steps lost per kill (mean / max)':
          f'{np.mean(lost):.2f} / {max(lost)}' if lost else '-',
      'newest checkpoints that did not read back':
          sum(bool(r['unreadable']) and r['newest_checkpoint'] in r['unreadable'] for r in rows),
      'checkpoints that did not read back (any)': sum(len(r['unreadable']) for r in rows),
      'fallbacks to an older checkpoint': sum(a.fell_back for a in attempts),
      'final run reached num_steps': (last.returncode == 0 and last.reached == num_steps),
      'final state equals the uninterrupted run': final_matches,
  }


def print_tables(rows, figures) -> None:
  print('| # | kill after (s) | moment | step reached | newest checkpoint | resumed from | '
        'steps lost | unreadable |')
  print('|---|---|---|---|---|---|---|---|')
  for i, r in enumerate(rows, 1):
    print(f'| {i} | {r["delay_s"]:.2f} | {r["moment"]} | {r["reached"]} | '
          f'{r["newest_checkpoint"]} | {r["resumed_from"]} | {r["lost"]} | '
          f'{", ".join(map(str, r["unreadable"])) or "-"} |')
  print('\n| figure | value |\n|---|---|')
  for name, value in figures.items():
    print(f'| {name} | {value} |')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--kills', type=int, default=50)
  parser.add_argument('--window', type=float, default=4.0,
                      help='seconds after the start-up over which kills are also drawn')
  parser.add_argument('--extra_steps', type=int, default=20,
                      help='steps the last run trains past the newest checkpoint')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--config', default='configs/ebm_toy2d.py:smoke')
  args = parser.parse_args()
  root = tempfile.mkdtemp(prefix='egm-kill-')
  try:
    began = time.monotonic()
    workdir = os.path.join(root, 'killed')
    attempts, num_steps = campaign(workdir, args.kills, args.window, args.seed, args.config,
                                   args.extra_steps)
    reference_dir = os.path.join(root, 'reference')
    reference = run_attempt(train_command(reference_dir, num_steps, args.config))
    final = [os.path.join(d, 'checkpoints', str(num_steps)) for d in (workdir, reference_dir)]
    matches = (reference.returncode == 0 and all(map(os.path.isdir, final))
               and same_arrays(*map(read_back, final)))
    rows = kill_rows(attempts)
    print_tables(rows, summary(rows, attempts, num_steps, matches))
    print(f'\n{len(attempts)} launches and an uninterrupted reference run of {num_steps} steps '
          f'in {time.monotonic() - began:.0f} s', flush=True)
  finally:
    shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
  main()
