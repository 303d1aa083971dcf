"""Multi-process runs: the launch flags, joining the processes, and stopping when one dies.

A process that dies (killed, preempted, crashed) must not leave the others waiting forever:
their next computation with it fails at once (Gloo on CPU: connection reset), and `cli.run`
then prints why with `stop_after_lost_process` and exits. A process that hangs without dying
is noticed by the JAX coordination service after --heartbeat_timeout seconds, and JAX itself
terminates the others ("the JAX distributed service detected fatal errors"); it takes no
callback for that from Python.
"""
import os
import re
import socket
import sys
import time

from absl import flags

from egm.errors import EgmError

_LAUNCH_FLAGS = ('coordinator_address', 'num_processes', 'process_id')


def define_flags(flag_values=flags.FLAGS):
  """Flags for multi-process runs; all unset means one process (or cluster auto-detection)."""
  fv = {'flag_values': flag_values}
  flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() (auto-detects TPU '
                    'pods, SLURM, ...); implied by --coordinator_address.', **fv)
  flags.DEFINE_string('coordinator_address', None, 'host:port of process 0, for a manual launch.',
                      **fv)
  flags.DEFINE_integer('num_processes', None, 'Number of processes, for a manual launch.', **fv)
  flags.DEFINE_integer('process_id', None, 'This process\'s index, for a manual launch.', **fv)
  flags.DEFINE_integer('heartbeat_timeout', 100, 'Seconds: a process not heard from for this '
                       'long counts as dead, and the other processes of the run stop.', **fv)
  flags.DEFINE_integer('initialization_timeout', 300, 'Seconds to wait for every process to '
                       'join before giving up.', **fv)


def check_flags(f) -> None:
  """Raises EgmError unless the launch flags of `f` (absl FlagValues) fit together."""
  given = {name: f[name].value for name in _LAUNCH_FLAGS}
  if f.heartbeat_timeout < 1 or f.initialization_timeout < 1:
    raise EgmError(f'--heartbeat_timeout={f.heartbeat_timeout} and --initialization_timeout='
                   f'{f.initialization_timeout} are seconds and must be at least 1.')
  if all(value is None for value in given.values()):
    return
  missing = [f'--{name}' for name, value in given.items() if value is None]
  if missing:
    raise EgmError('A manual multi-process launch needs --coordinator_address, --num_processes '
                   f'and --process_id together; {", ".join(missing)} is missing. Give all three '
                   '(or --distributed alone on a TPU pod or SLURM cluster).')
  if not 0 <= given['process_id'] < given['num_processes']:
    raise EgmError(f'--process_id={given["process_id"]} must lie in [0, --num_processes='
                   f'{given["num_processes"]}): number the processes 0 to N-1.')
  _host_port(given['coordinator_address'])


def _host_port(address: str) -> tuple[str, int]:
  """('host', port) of a HOST:PORT address; EgmError when it is not one."""
  host, _, port = address.rpartition(':')
  if not host or not port.isdigit():
    raise EgmError(f'--coordinator_address={address} is not HOST:PORT (e.g. 10.0.0.1:12345): '
                   'give the host of process 0 and a free port on it.')
  return host.strip('[]'), int(port)


def _wait_for_coordinator(address: str, timeout: int) -> None:
  """Returns once process 0's coordinator at `address` accepts connections; EgmError after
  `timeout` seconds (JAX itself would abort the process with a C++ stack trace)."""
  host, port = _host_port(address)
  deadline = time.monotonic() + timeout
  while True:
    try:
      with socket.create_connection((host, port), timeout=1):
        return
    except OSError as e:
      if time.monotonic() > deadline:
        raise EgmError(f'The processes of this run did not all join within '
                       f'--initialization_timeout={timeout} s: process 0 (the coordinator at '
                       f'{address}) does not answer ({e.strerror or e}). Start process 0 with '
                       'the same --coordinator_address, or fix the address.') from e
      time.sleep(0.5)


def initialize():
  """Joins the processes of a multi-process run, as the flags ask (nothing for one process)."""
  f = flags.FLAGS
  check_flags(f)
  if not (f.distributed or f.coordinator_address):
    return
  if f.coordinator_address and f.process_id != 0:
    _wait_for_coordinator(f.coordinator_address, f.initialization_timeout)
  import jax
  try:
    jax.distributed.initialize(f.coordinator_address, f.num_processes, f.process_id,
                               initialization_timeout=f.initialization_timeout,
                               heartbeat_timeout_seconds=f.heartbeat_timeout)
  except (RuntimeError, ValueError) as e:  # --distributed where JAX detects no cluster
    raise EgmError(f'JAX could not set up the processes of this run ({first_line(e)}). '
                   '--distributed alone works where JAX detects the cluster (TPU pods, SLURM, '
                   '...); elsewhere start each process with --coordinator_address, '
                   '--num_processes and --process_id.') from e


def first_line(error: BaseException) -> str:
  """The first non-blank line of `error`'s message."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return lines[0] if lines else type(error).__name__


def lost_a_process(error: BaseException) -> bool:
  """Whether `error` is a failed computation of a multi-process run, raised as it runs
  (JaxRuntimeError) or when its result is next used (ValueError with the runtime's status,
  e.g. 'UNKNOWN: Gloo all-reduce failed: ... Connection reset by peer')."""
  jax = sys.modules.get('jax')
  if jax is None or not jax.distributed.is_initialized() or jax.process_count() < 2:
    return False
  return isinstance(error, jax.errors.JaxRuntimeError) or (
      isinstance(error, ValueError) and re.match(r'[A-Z_]+: ', str(error)) is not None)


def stop_after_lost_process(error: BaseException) -> None:
  """Prints why this process stops and exits with status 1 at once.

  `os._exit` skips JAX's exit handler, whose shutdown barrier would wait for the dead process
  until --heartbeat_timeout and then abort with a C++ stack trace.
  """
  import jax
  print(f'error: process {jax.process_index()} of {jax.process_count()} stops: a computation '
        f'shared with the other processes failed ({first_line(error)}); most likely another '
        'process of this run died or was stopped (see its log). Start all processes again with '
        'the same command: training resumes from the newest checkpoint.',
        file=sys.stderr, flush=True)
  sys.stdout.flush()
  os._exit(1)
