"""The pod path on one machine: two processes on localhost train like one process with as many devices."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _launch(config, workdir, devices_per_process, extra=()):
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices_per_process}',
             JAX_PLATFORMS='cpu')
  args = [sys.executable, 'train.py', '--config', config, '--workdir', str(workdir), *extra]
  return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def _losses(workdir):
  return {row['step']: row for row in map(json.loads, open(os.path.join(workdir, 'metrics.jsonl')))}


# (config, logged metrics compared, logged steps, checkpoint steps)
RUNS = [('configs/triangle_toy2d.py:smoke', ('loss', 'rec', 'kl', 'contrastive'), [2, 4, 6],
         ['3', '6']),
        # per-example state (tests/platform_methods.py): rows sharded over both processes
        ('tests/per_example_config.py', ('loss', 'seen'), list(range(2, 13, 2)), ['12', '6'])]


@pytest.mark.parametrize('config,names,steps,checkpoints', RUNS)
def test_two_processes_match_one_process(tmp_path, config, names, steps, checkpoints):
  single = _launch(config, tmp_path / 'single', 4)
  out, _ = single.communicate(timeout=600)
  assert single.returncode == 0, out
  port = _free_port()
  env_bind = {'JAX_COORDINATOR_BIND_ADDRESS': f'127.0.0.1:{port}'}
  os.environ.update(env_bind)
  try:
    procs = [_launch(config, tmp_path / 'multi', 2, ['--coordinator_address', f'127.0.0.1:{port}',
                                             '--num_processes', '2', '--process_id', str(i)])
             for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
  finally:
    for name in env_bind:
      os.environ.pop(name)
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out
  one, two = _losses(tmp_path / 'single'), _losses(tmp_path / 'multi')
  assert sorted(one) == sorted(two) == steps
  for step in one:
    for name in names:
      np.testing.assert_allclose(two[step][name], one[step][name], rtol=1e-4, atol=1e-5,
                                 err_msg=f'{name} at step {step}')
  assert sorted(os.listdir(tmp_path / 'multi' / 'checkpoints')) == checkpoints
