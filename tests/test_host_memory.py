"""egm.cpu.host_memory: the setting is read and checked, the jemalloc and huge-page restarts happen
only where they help and keep the process's pid, arguments, preloads and settings, `cli.run`
applies the setting before its main, and in a fresh process 'jemalloc', 'hugepages' and
'retain' each remove most of the page faults that each call of a compiled Langevin chain takes
under glibc's settings."""
import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from egm import cli
from egm.cpu import host_memory
from egm.errors import EgmError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A fresh process: the setting (applied before JAX runs), then eight calls of egm's compiled
# Langevin chain (benchmarks/chain.py, batch 64) with the minor page faults of each.
CHAIN_FAULTS = """
import json, resource
from egm.cpu import host_memory
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


class Restarted(BaseException):
  """Stands for a re-execution: nothing after it runs in the process."""


@pytest.fixture(name='restarts')
def recorded_restarts(monkeypatch):
  """The restarts `apply_choice` asks for, recorded and raised as `Restarted` instead of done;
  no jemalloc loaded."""
  restarts = []

  def restart(*what):
    restarts.append(what)
    raise Restarted

  monkeypatch.setattr(host_memory, 'restart_with_jemalloc',
                      lambda library: restart('jemalloc', library))
  monkeypatch.setattr(host_memory, 'restart_with_hugepages', lambda: restart('hugepages'))
  monkeypatch.setattr(host_memory, 'jemalloc_loaded', lambda: False)
  monkeypatch.setattr(host_memory, 'hugepages_need_restart', lambda: True)
  monkeypatch.delenv(host_memory.VARIABLE, raising=False)
  monkeypatch.delenv('GLIBC_TUNABLES', raising=False)
  monkeypatch.delenv('LD_PRELOAD', raising=False)
  monkeypatch.setattr(host_memory.sys, 'argv', ['train.py'])
  return restarts


def test_choice_is_auto_unless_asked_and_names_the_choices_on_a_bad_value(
    monkeypatch, libc, restarts):
  monkeypatch.setattr(host_memory, 'jemalloc_library', lambda: 'libjemalloc.so.2')
  assert host_memory.choice() == 'auto'
  with pytest.raises(Restarted):
    host_memory.apply_choice()
  assert restarts == [('jemalloc', 'libjemalloc.so.2')] and libc.calls == []
  monkeypatch.setattr(host_memory, 'jemalloc_library', lambda: '')  # not installed
  with pytest.raises(Restarted):
    host_memory.apply_choice()
  assert restarts[1:] == [('hugepages',)]
  monkeypatch.setenv(host_memory.VARIABLE, 'retain')
  assert host_memory.apply_choice() == 'retain' and len(libc.calls) == 3 and len(restarts) == 2
  monkeypatch.setenv(host_memory.VARIABLE, 'glibc')
  assert host_memory.apply_choice() == 'glibc' and len(libc.calls) == 3 and len(restarts) == 2
  monkeypatch.setenv(host_memory.VARIABLE, 'tcmalloc')
  with pytest.raises(EgmError, match=r"EGM_HOST_MALLOC='tcmalloc'.*'auto', 'jemalloc', "
                     r"'hugepages', 'retain', 'glibc'"):
    host_memory.apply_choice()


def test_jemalloc_asked_for_but_not_installed_names_the_package(monkeypatch, restarts):
  monkeypatch.setattr(host_memory, 'jemalloc_library', lambda: '')
  monkeypatch.setenv(host_memory.VARIABLE, 'jemalloc')
  with pytest.raises(EgmError, match=r'no jemalloc library .* apt install libjemalloc2'):
    host_memory.apply_choice()
  assert restarts == []


def test_jemalloc_restarts_only_where_it_is_not_loaded_and_not_preloaded(monkeypatch, restarts):
  library = '/opt/lib/libjemalloc.so.2'
  assert host_memory.jemalloc_needs_restart(library)
  assert not host_memory.jemalloc_needs_restart('')  # not installed
  monkeypatch.setenv('LD_PRELOAD', f'/x/libfoo.so {library}')
  assert not host_memory.jemalloc_needs_restart(library)  # preloaded (and maybe failed): once
  monkeypatch.delenv('LD_PRELOAD')
  monkeypatch.setattr(host_memory.sys, 'argv', [''])  # an interactive interpreter
  assert not host_memory.jemalloc_needs_restart(library)
  monkeypatch.setattr(host_memory.sys, 'argv', ['train.py'])
  monkeypatch.setattr(host_memory, 'jemalloc_loaded', lambda: True)
  assert not host_memory.jemalloc_needs_restart(library)  # already this process's malloc
  monkeypatch.setattr(host_memory, 'jemalloc_library', lambda: library)
  monkeypatch.setenv(host_memory.VARIABLE, 'jemalloc')
  assert host_memory.apply_choice() == 'jemalloc' and restarts == []


def test_auto_falls_back_to_huge_pages_where_the_preload_did_not_load(monkeypatch, restarts):
  library = '/opt/lib/libjemalloc.so.2'
  monkeypatch.setattr(host_memory, 'jemalloc_library', lambda: library)
  monkeypatch.setenv('LD_PRELOAD', library)  # the restart happened, the library did not load
  with pytest.raises(Restarted):
    host_memory.apply_choice()
  assert restarts == [('hugepages',)]
  monkeypatch.setattr(host_memory, 'hugepages_need_restart', lambda: False)
  assert host_memory.apply_choice() == 'glibc' and len(restarts) == 1


def test_the_jemalloc_restart_puts_it_first_and_the_users_options_last(monkeypatch):
  environments = []
  monkeypatch.setattr(host_memory, '_restart', lambda env, setting: environments.append(env))
  monkeypatch.setenv('LD_PRELOAD', '/x/libfoo.so:/x/libbar.so')
  monkeypatch.setenv('MALLOC_CONF', 'dirty_decay_ms:500')
  host_memory.restart_with_jemalloc('/opt/lib/libjemalloc.so.2')
  monkeypatch.delenv('LD_PRELOAD')
  monkeypatch.delenv('MALLOC_CONF')
  host_memory.restart_with_jemalloc('libjemalloc.so.2')
  first, second = environments
  assert first['LD_PRELOAD'] == '/opt/lib/libjemalloc.so.2 /x/libfoo.so /x/libbar.so'
  assert first['MALLOC_CONF'] == host_memory.JEMALLOC_CONF + ',dirty_decay_ms:500'
  assert second['LD_PRELOAD'] == 'libjemalloc.so.2'
  assert second['MALLOC_CONF'] == host_memory.JEMALLOC_CONF


def test_retain_sets_each_mallopt_parameter_once(monkeypatch, libc):
  assert host_memory.retain_freed_memory() is True
  # M_MMAP_MAX 0, M_TRIM_THRESHOLD -1 (SIZE_MAX: never trim), M_ARENA_MAX 1.
  assert libc.calls == [(-4, 0), (-1, -1), (-8, 1)]
  monkeypatch.setattr(host_memory.platform, 'libc_ver', lambda: ('', ''))
  assert host_memory.retain_freed_memory() is False  # not glibc: nothing is set
  assert len(libc.calls) == 3


@pytest.mark.parametrize('mode_line, mode', [('always [madvise] never', 'madvise'),
                                             ('[always] madvise never', 'always'),
                                             ('always madvise [never]', 'never')])
def test_thp_mode_reads_the_bracketed_mode(monkeypatch, tmp_path, mode_line, mode):
  path = tmp_path / 'enabled'
  path.write_text(mode_line + '\n')
  monkeypatch.setattr(host_memory, 'THP_MODE_FILE', str(path))
  assert host_memory.thp_mode() == mode
  monkeypatch.setattr(host_memory, 'THP_MODE_FILE', str(tmp_path / 'absent'))
  assert host_memory.thp_mode() == ''


def test_a_restart_is_needed_only_where_the_tunable_would_give_huge_pages(monkeypatch):
  monkeypatch.setattr(host_memory.platform, 'libc_ver', lambda: ('glibc', '2.36'))
  monkeypatch.setattr(host_memory, 'thp_mode', lambda: 'madvise')
  monkeypatch.setattr(host_memory.sys, 'argv', ['train.py'])
  monkeypatch.setenv('GLIBC_TUNABLES', 'glibc.malloc.arena_max=4')
  assert host_memory.hugepages_need_restart()
  monkeypatch.setenv('GLIBC_TUNABLES', 'glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1')
  assert not host_memory.hugepages_need_restart()  # started with it
  monkeypatch.setenv('GLIBC_TUNABLES', 'glibc.malloc.hugetlb=0')
  assert not host_memory.hugepages_need_restart()  # the user's own choice
  monkeypatch.delenv('GLIBC_TUNABLES')
  for mode in ('always', 'never', ''):  # huge pages already everywhere, or never
    monkeypatch.setattr(host_memory, 'thp_mode', lambda mode=mode: mode)
    assert not host_memory.hugepages_need_restart()
  monkeypatch.setattr(host_memory, 'thp_mode', lambda: 'madvise')
  monkeypatch.setattr(host_memory.platform, 'libc_ver', lambda: ('glibc', '2.34'))
  assert not host_memory.hugepages_need_restart()  # the tunable came with 2.35
  for libc in (('', ''), ('glibc', '')):  # another C library; a version not found
    monkeypatch.setattr(host_memory.platform, 'libc_ver', lambda libc=libc: libc)
    assert not host_memory.hugepages_need_restart()
  monkeypatch.setattr(host_memory.platform, 'libc_ver', lambda: ('glibc', '2.36'))
  assert host_memory.hugepages_need_restart()
  monkeypatch.setattr(host_memory.sys, 'argv', [''])  # an interactive interpreter
  assert not host_memory.hugepages_need_restart()


# A fresh process that restarts once: same pid and arguments, the tunable in effect, and the
# environment it started with put back for the processes it starts (CHILD).
CHILD = "import os; print(os.environ.get('GLIBC_TUNABLES'), os.environ.get('LD_PRELOAD'))"
RESTART = f"""
import os, subprocess, sys
from egm.cpu import host_memory
host_memory.hugepages_need_restart = lambda: host_memory.HUGEPAGE_TUNABLE not in os.environ[
    'GLIBC_TUNABLES']
print('start', os.getpid(), sys.argv[1:], flush=True)
effect = host_memory.apply_choice()
print('end', os.getpid(), sys.argv[1:], effect, os.environ['GLIBC_TUNABLES'], flush=True)
subprocess.run([sys.executable, '-c', {CHILD!r}], check=True)
"""


def test_restart_keeps_pid_arguments_and_tunables():
  env = dict(os.environ, GLIBC_TUNABLES='glibc.malloc.arena_max=4')
  env[host_memory.VARIABLE] = 'hugepages'
  proc = subprocess.run([sys.executable, '-c', RESTART, 'a', '--b=c'], cwd=REPO, env=env,
                        capture_output=True, text=True, check=True, timeout=120)
  pid = proc.stdout.split()[1]
  assert proc.stdout.splitlines() == [
      f"start {pid} ['a', '--b=c']", f"start {pid} ['a', '--b=c']",
      f"end {pid} ['a', '--b=c'] hugepages glibc.malloc.arena_max=4",
      'glibc.malloc.arena_max=4 None'], proc.stdout


# A fresh process under 'auto' with jemalloc installed: it restarts once with jemalloc loaded.
JEMALLOC_RESTART = """
import os, sys
from egm.cpu import host_memory
print('start', os.getpid(), sys.argv[1:], host_memory.in_effect(), flush=True)
effect = host_memory.apply_choice()
print('end', os.getpid(), sys.argv[1:], effect, os.environ.get('MALLOC_CONF'),
      os.environ.get('LD_PRELOAD'), flush=True)
"""


@pytest.mark.skipif(not host_memory.jemalloc_library(), reason='jemalloc is not installed')
def test_auto_restarts_once_with_jemalloc_where_it_is_installed():
  env = {k: v for k, v in os.environ.items()
         if k not in (host_memory.VARIABLE, 'LD_PRELOAD', 'MALLOC_CONF')}
  proc = subprocess.run([sys.executable, '-c', JEMALLOC_RESTART, 'a', '--b=c'], cwd=REPO,
                        env=env, capture_output=True, text=True, check=True, timeout=120)
  pid = proc.stdout.split()[1]
  assert proc.stdout.splitlines() == [
      f"start {pid} ['a', '--b=c'] glibc", f"start {pid} ['a', '--b=c'] jemalloc",
      f"end {pid} ['a', '--b=c'] jemalloc None None"], proc.stdout
  assert '<jemalloc>' not in proc.stderr, proc.stderr  # every option of JEMALLOC_CONF is known


def test_nothing_is_applied_with_egm_cpu_off_or_where_jax_will_run_on_an_accelerator(
    monkeypatch):
  def refuse(*args):
    raise AssertionError('the process was about to be re-executed')

  for name in ('restart_with_jemalloc', 'restart_with_hugepages', 'retain_freed_memory'):
    monkeypatch.setattr(host_memory, name, refuse)
  monkeypatch.setattr(host_memory, 'hugepages_need_restart', lambda: True)
  monkeypatch.setattr(host_memory, 'jemalloc_needs_restart', lambda library: True)
  for variables in ({'EGM_CPU': 'off'}, {'JAX_PLATFORMS': 'cuda'}, {'JAX_PLATFORMS': 'tpu,cpu'}):
    for choice in host_memory.CHOICES:
      with monkeypatch.context() as m:
        m.setenv(host_memory.VARIABLE, choice)
        for name, value in variables.items():
          m.setenv(name, value)
        assert host_memory.apply_choice() in ('glibc', 'hugepages', 'jemalloc')


def test_an_accelerator_is_expected_from_jax_platforms_or_a_plugin_with_its_device(
    monkeypatch):
  from egm.cpu import switch

  class Dist:
    def __init__(self, name):
      self.metadata = {'Name': name}

  monkeypatch.setattr(switch.importlib.metadata, 'distributions',
                      lambda: [Dist('numpy'), Dist('jax-cuda12-plugin')])
  for platforms, expected in (('cpu', False), ('cuda', True), ('tpu', True), ('cpu,cuda', False)):
    monkeypatch.setenv('JAX_PLATFORMS', platforms)
    assert switch.accelerator_expected() == expected, platforms
  monkeypatch.delenv('JAX_PLATFORMS')
  for present, expected in ((set(), False), ({'/dev/nvidiactl'}, True)):
    monkeypatch.setattr(switch.os.path, 'exists', lambda path, present=present: path in present)
    assert switch.accelerator_expected() == expected


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
  env = {k: v for k, v in os.environ.items() if k != 'GLIBC_TUNABLES'}
  env.update(EGM_HOST_MALLOC=choice, XLA_FLAGS='')
  proc = subprocess.run([sys.executable, '-c', CHAIN_FAULTS], cwd=REPO, env=env,
                        capture_output=True, text=True, check=True, timeout=300)
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='the settings are glibc\'s')
@pytest.mark.skipif(host_memory.thp_mode() == 'always',
                    reason='the kernel gives huge pages to every mapping: few faults anyway')
@pytest.mark.parametrize('choice', ['jemalloc', 'hugepages', 'retain'])
def test_the_setting_removes_most_page_faults_of_each_chain_call(choice):
  if choice == 'hugepages' and not host_memory.hugepages_need_restart():
    pytest.skip('glibc < 2.35 or the kernel\'s THP mode is not madvise: no tunable to set')
  if choice == 'jemalloc' and not host_memory.jemalloc_library():
    pytest.skip('jemalloc is not installed')
  glibc, chosen = _chain_faults('glibc'), _chain_faults(choice)
  assert glibc['applied'] == 'glibc' and chosen['applied'] == choice
  # Under glibc's settings every call maps its buffers afresh, 4 KiB at a time (thousands of
  # faults). With huge pages a fault maps 2 MiB of a large buffer (mappings under 2 MiB still
  # fault per page: 7.6% remained here); with jemalloc and with 'retain' a typical call after
  # the first two reuses the memory that earlier ones took (it may still grow once more: the
  # median).
  glibc_median = float(np.median(glibc['faults'][2:]))
  assert glibc_median > 1000, glibc
  bound = {'jemalloc': 0.05, 'hugepages': 0.2, 'retain': 0.05}[choice]
  assert np.median(chosen['faults'][2:]) < bound * glibc_median, (glibc, chosen)
