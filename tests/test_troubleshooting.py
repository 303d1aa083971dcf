"""Bad inputs, tried: every row of the troubleshooting table (docs/troubleshooting.md) is checked here.

Each case of `troubleshooting_cases.CASES` runs in-process through what `python train.py
ARGS` runs before its first compile (flags, `cli.check_run`, the launch flags,
`experiment.build`, the first batch) and must stop with an EgmError holding its fragment; a
few run as real `train.py` processes, whose output must hold the message and no traceback;
the multi-process rows start real processes. The table in docs/troubleshooting.md must be `readme_table()`
verbatim (print it with `python -m tests.troubleshooting_cases`), so the two cannot drift.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from absl import flags

from egm import cli, data
from egm.errors import EgmError
from egm.run import distributed, experiment
from troubleshooting_cases import CASES, CHECKPOINT_ROWS, OTHER_ROWS, TOY, Case, readme_table

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _args(case: Case, tmp) -> list[str]:
  args = [a.replace('{tmp}', str(tmp)) for a in case.args]
  if args and not args[0].startswith('--'):
    args[0] = '--config=' + args[0]
  if case.workdir and not any(a.startswith('--workdir') for a in args):
    args.append(f'--workdir={tmp}/run')
  return args


def train_start_error(argv: list[str]) -> str | None:
  """The EgmError message of what `python train.py ARGV` runs before its first compile (its
  checks, then the trainer's `experiment.build` and first batch), or None."""
  flag_values = flags.FlagValues()
  config, workdir = cli.define_run_flags('', flag_values=flag_values)
  saved_argv, sys.argv = sys.argv, ['train.py', *argv]  # the config flag reads its overrides here
  # ml_collections runs each config file in the module of the one before (named after the
  # flag), which a fresh process does not have.
  sys.modules.pop('config_config', None)
  try:
    cli.parse(sys.argv, flag_values)
    cli.check_run(config.value, workdir.value)
    distributed.check_flags(flag_values)
    exp = experiment.build(config.value)
    data.train_batches(exp.dataset.train, global_batch_size=config.value.train.batch_size,
                       seed=0, mask=config.value.data.mask, prefetch=0)
  except EgmError as e:
    return str(e)
  finally:
    sys.argv = saved_argv
  return None


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_error(case, tmp_path, monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'tfds'))
  if case.make:
    case.make(str(tmp_path))
  message = train_start_error(_args(case, tmp_path))
  assert message is not None, f'{case.bad_input}: no error'
  assert case.fragment in message, message


def test_a_good_run_passes_the_same_checks(tmp_path):
  assert train_start_error([f'--config={TOY}', f'--workdir={tmp_path}/run']) is None


def test_the_readme_table_is_this_table():
  with open(os.path.join(REPO, 'docs', 'troubleshooting.md')) as f:
    page = f.read()
  assert readme_table() in page, 'regenerate it: python -m tests.troubleshooting_cases'
  assert len(CASES) + len(OTHER_ROWS) + len(CHECKPOINT_ROWS) >= 40
  assert len({c.id for c in CASES}) == len(CASES)
  with open(__file__) as f:
    here = f.read()
  for _, _, _, test in OTHER_ROWS:
    assert f'def {test}(' in here, test
  for _, _, _, test in CHECKPOINT_ROWS:
    path, name = test.split('::')
    with open(os.path.join(REPO, 'tests', path)) as f:
      assert f'def {name}(' in f.read(), test


def _train_py(args, stdout=subprocess.PIPE, **env):
  """`python train.py ARGS` on one CPU device, stderr into `stdout`; `env` adds variables."""
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='--xla_force_host_platform_device_count=1',
             **env)
  return subprocess.Popen([sys.executable, 'train.py', *args], cwd=REPO, env=env, text=True,
                          stdout=stdout, stderr=subprocess.STDOUT)


def _assert_one_paragraph(out: str, fragment: str):
  assert 'error: ' in out and fragment in out, out
  assert 'Traceback' not in out and 'site-packages/jax' not in out, out


# Through real train.py processes: the message, status 2, no traceback.
@pytest.mark.parametrize('case_id', ['config-not-python', 'batch-zero', 'empty-train',
                                     'workdir-under-file', 'launch-process-id'])
def test_train_py_prints_the_message_and_no_traceback(case_id, tmp_path):
  case = next(c for c in CASES if c.id == case_id)
  if case.make:
    case.make(str(tmp_path))
  process = _train_py(_args(case, tmp_path))
  out, _ = process.communicate(timeout=120)
  assert process.returncode == 2, out
  _assert_one_paragraph(out, case.fragment)


def _fragment(test: str) -> str:
  """The message fragment of the OTHER_ROWS row that `test` checks."""
  return next(fragment for _, _, fragment, name in OTHER_ROWS if name == test)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_a_missing_coordinator_stops_the_process(tmp_path):
  started = time.monotonic()
  process = _train_py([f'--config={TOY}', f'--workdir={tmp_path}/run', '--coordinator_address',
                       f'127.0.0.1:{_free_port()}', '--num_processes=2', '--process_id=1',
                       '--initialization_timeout=3'])
  out, _ = process.communicate(timeout=120)
  assert process.returncode == 2 and time.monotonic() - started < 60, out
  _assert_one_paragraph(out, _fragment('test_a_missing_coordinator_stops_the_process'))


def test_distributed_without_a_cluster(tmp_path):
  process = _train_py([f'--config={TOY}', f'--workdir={tmp_path}/run', '--distributed'])
  out, _ = process.communicate(timeout=120)
  assert process.returncode == 2, out
  _assert_one_paragraph(out, _fragment('test_distributed_without_a_cluster'))


@pytest.mark.parametrize('victim', [1, 0])
def test_a_killed_process_stops_the_other(victim, tmp_path):
  """Two processes train; one is killed (SIGKILL) after both have run updates: the other
  stops within seconds with the message, without a traceback (and never hangs)."""
  port = _free_port()
  logs = [tmp_path / f'process{i}.log' for i in range(2)]
  procs = []
  for i in range(2):
    with open(logs[i], 'w') as log:
      procs.append(_train_py(
          ['--config=tests/per_example_config.py', f'--workdir={tmp_path}/run',
           '--config.train.num_steps=1000000', '--config.train.checkpoint_every=1000000',
           '--config.train.sample_every=1000000', f'--coordinator_address=127.0.0.1:{port}',
           '--num_processes=2', f'--process_id={i}'],
          stdout=log, JAX_COORDINATOR_BIND_ADDRESS=f'127.0.0.1:{port}'))
  survivor = procs[1 - victim]
  try:
    deadline = time.monotonic() + 240
    while not all(re.search(r'^step \d+: the first update', p.read_text(), re.M) for p in logs):
      assert time.monotonic() < deadline and survivor.poll() is None, logs[1 - victim].read_text()
      time.sleep(0.5)
    procs[victim].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    survivor.wait(timeout=60)
    stopped_after = time.monotonic() - killed
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  out = logs[1 - victim].read_text()
  assert survivor.returncode == 1 and stopped_after < 30, out
  _assert_one_paragraph(out, _fragment('test_a_killed_process_stops_the_other'))

