"""egm.host_memory: the setting is read and checked, `cli.run` applies it before its main, and
in a fresh process 'retain' removes the page faults that each call of a compiled Langevin
chain takes under glibc's defaults."""
import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from egm import cli, host_memory
from egm.errors import EgmError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A fresh process: the setting (applied before JAX runs), then eight calls of egm's compiled
# Langevin chain (benchmarks/chain.py, batch 64) with the minor page faults of each.
CHAIN_FAULTS = """
import json, resource
from egm import host_memory
applied = host_memory.apply_choice()
from benchmarks import chain
call = chain.blocking_call(64, 5)[0]
faults = []
for _ in range(8):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  call()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({'applied': applied, 'faults': faults}))
"""


class FakeLibc:
  """Records mallopt calls; each succeeds."""

  def __init__(self):
    self.calls = []

  def mallopt(self, parameter, value):
    self.calls.append((parameter, value))
    return 1


@pytest.fixture(name='libc')
def fake_glibc(monkeypatch):
  libc = FakeLibc()
  monkeypatch.setattr(host_memory.platform, 'libc_ver', lambda: ('glibc', '2.36'))
  monkeypatch.setattr(host_memory.ctypes, 'CDLL', lambda name: libc)
  return libc


def test_choice_is_default_unless_asked_and_names_the_choices_on_a_bad_value(monkeypatch, libc):
  monkeypatch.delenv(host_memory.VARIABLE, raising=False)
  assert host_memory.choice() == 'default'
  assert host_memory.apply_choice() is False and libc.calls == []
  monkeypatch.setenv(host_memory.VARIABLE, 'retain')
  assert host_memory.choice() == 'retain'
  assert host_memory.apply_choice() is True and len(libc.calls) == 3
  monkeypatch.setenv(host_memory.VARIABLE, 'jemalloc')
  with pytest.raises(EgmError, match=r"EGM_HOST_MALLOC='jemalloc'.*'default', 'retain'"):
    host_memory.apply_choice()


def test_retain_sets_each_mallopt_parameter_once(monkeypatch, libc):
  assert host_memory.retain_freed_memory() is True
  # M_MMAP_MAX 0, M_TRIM_THRESHOLD -1 (SIZE_MAX: never trim), M_ARENA_MAX 1.
  assert libc.calls == [(-4, 0), (-1, -1), (-8, 1)]
  monkeypatch.setattr(host_memory.platform, 'libc_ver', lambda: ('', ''))
  assert host_memory.retain_freed_memory() is False  # not glibc: nothing is set
  assert len(libc.calls) == 3


def test_cli_run_applies_the_choice_before_main_and_reports_a_bad_value(monkeypatch, capsys):
  order = []
  monkeypatch.setattr(host_memory, 'apply_choice', lambda: order.append('malloc'))
  monkeypatch.setattr(cli.app, 'run', lambda main, flags_parser: main(['prog']))
  cli.run(lambda argv: order.append('main'))
  assert order == ['malloc', 'main']

  def bad():
    raise EgmError('EGM_HOST_MALLOC=x is not one of ...')

  monkeypatch.setattr(host_memory, 'apply_choice', bad)
  with pytest.raises(SystemExit) as exit_info:
    cli.run(lambda argv: order.append('main'))
  assert exit_info.value.code == 2 and 'EGM_HOST_MALLOC=x' in capsys.readouterr().err
  assert order == ['malloc', 'main']


def _chain_faults(choice: str) -> dict:
  env = dict(os.environ, EGM_HOST_MALLOC=choice, XLA_FLAGS='')
  proc = subprocess.run([sys.executable, '-c', CHAIN_FAULTS], cwd=REPO, env=env,
                        capture_output=True, text=True, check=True, timeout=300)
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='the settings are glibc\'s')
def test_retained_memory_removes_the_page_faults_of_each_chain_call():
  default, retain = _chain_faults('default'), _chain_faults('retain')
  assert default['applied'] is False and retain['applied'] is True
  # Under glibc's defaults every call maps its buffers afresh (thousands of faults); with the
  # setting a typical call after the first two reuses the heap that earlier ones grew (the
  # heap may still grow once more, in one call: the median).
  default_median = float(np.median(default['faults'][2:]))
  assert default_median > 1000, default
  assert np.median(retain['faults'][2:]) < 0.05 * default_median, (default, retain)
