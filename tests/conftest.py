"""Test session set-up: forced CPU devices (before jax is imported), a temporary data cache
($EGM_CACHE_DIR), the repo on sys.path, and the test tiers.

Tiers (what `.ci/run` runs, one step each):

* fast (the README command, `python -m pytest`): unit and property tests. pyproject's
  `addopts` deselects the two tiers below (`-m 'not slow and not integration'`).
* integration (`python -m pytest -m 'integration and not slow'`): smoke train+eval runs of
  configs, the entry points run as subprocesses (train.py, eval.py, `python -m ...`), the
  two-process multi-host run, and tests that need an end-to-end training run (a trained
  classifier, a resumed run). A `-m` on the command line replaces the one in `addopts`.
* slow (`EGM_TEST_DEVICES=1 python -m pytest -m slow`): long learning runs, marked
  `@pytest.mark.slow` in their files. Never also marked integration by the rules below.

Tests are put in the integration tier here, by rule, so that a test added to an existing
file needs no marker (`pytest_collection_modifyitems` below):

1. every test of a module in `INTEGRATION_MODULES` (the config smoke runs, the two-process
   run);
2. every test named in `INTEGRATION_TESTS` (measured long, without a rule-3 match), by its
   function ('module::function') or one of its parameters ('module::function[id]');
3. every test whose source -- the test function, the functions of its own module that it
   calls (followed transitively), and the fixtures of its own module that it uses -- matches
   `_INTEGRATION_SOURCE`: it starts a subprocess (`subprocess`, `Popen`, `multiprocessing`,
   `os.system`: all of test_cli.py) or runs the training loop (`trainer.train(`,
   `evaluate.evaluate(`: e.g. test_eval_registry.py's trained classifier fixture);
4. `@pytest.mark.integration` written on a test (or `pytestmark` on a module): use it for a
   new test that takes more than ~10 s on 2 cores without matching rule 3.

`KEEP_FAST` names the tests that rule 3 would move although each is the only test of a
unit-level property and takes seconds; they stay in the fast tier. A test marked `slow` is
never made integration. List a tier with `python -m pytest --collect-only -q -m integration`.

Devices: 8 forced CPU devices by default (fast and integration tiers); `EGM_TEST_DEVICES=1`
for the slow learning runs, which need no collectives (on 2 cores, long runs over 8 virtual
devices can starve XLA:CPU's collective rendezvous). The count is fixed per process, so it is
per tier, not per test. The fast tier keeps 8: tests that do not shard run on one device
anyway and cost the same under 1 or 8 forced devices (measured: the same CPU time for
test_nets/test_coopnets), while the fast tier's sharding tests (per-example state on 1 vs 8
devices, batch divisibility, the no-transfer update on the full mesh) need them. The long
1-vs-8-device update runs in the integration tier, also with 8. Tests that spawn processes
set their own device count.
"""
import atexit
import inspect
import os
import re
import shutil
import sys
import tempfile

import pytest

DEVICES = os.environ.get('EGM_TEST_DEVICES', '8')
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           f' --xla_force_host_platform_device_count={DEVICES}').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# A cache of decoded data sets for this session only (processes the tests start inherit it),
# so the tests neither read nor grow the user's ~/.cache/egm.
_CACHE = tempfile.mkdtemp(prefix='egm-test-cache-')
os.environ['EGM_CACHE_DIR'] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

# Rule 1: whole modules (by file name without .py).
INTEGRATION_MODULES = {
    'test_configs',       # every config's :smoke form trained and evaluated
    'test_multiprocess',  # two train.py processes on localhost against one
}
# Rule 2: single tests, 'module::function' (every parametrisation).
INTEGRATION_TESTS = {
    # The sharded update of a real config equals the single-device one: 1 and 8-device meshes
    # compiled for triangle_digits, ~60 s. Per-example state sharding (test_platform) and
    # the mesh under test_performance keep sharding in the fast tier.
    'test_training::test_one_and_eight_devices_give_the_same_update',
    # SIGKILLs train.py subprocesses through benchmarks.kill.campaign (outside its module, so
    # rule 3 does not see it), ~50 s.
    'test_preemption::test_sigkill_at_random_moments_resumes_from_the_newest_intact_checkpoint',
    # Real updates of four configs for 30-80 steps (the `healthy` fixture, ~28 s) and the
    # tests that read them (the detectors fired by failures injected into those streams); the
    # rest of the guard stays fast (the collapse rule, spread ratio, rollback, settings).
    'test_guard::test_detectors_are_silent_on_healthy_runs',
    'test_guard::test_each_detector_fires_where_its_failure_starts',
    'test_guard::test_watched_metrics_are_ones_the_updates_return',
    # The evaluation's short and long-run chains with their figures, ~13 s.
    'test_ebm::test_long_run_diagnostics_are_reported',
    # One parameter of three (~27 s): the ebm and abp configs keep the property fast.
    'test_performance::test_update_traces_once_and_makes_no_implicit_transfers'
    '[configs.triangle_digits-shape1]',
}
# Exceptions to rule 3, 'module::function': each the only test of a unit-level property,
# seconds long, that goes through the training loop (of a toy method or for two steps).
KEEP_FAST = {
    'test_first_hour::test_a_budgeted_stop_writes_the_last_sample_grid',
    'test_growth::test_a_run_stopped_in_phase_two_resumes_opens_and_evaluates_there',
    'test_method_settings::test_a_method_from_tests_trains_with_its_own_per_network_settings',
    'test_training::test_non_finite_loss_stops_with_a_clear_error',
    'test_platform::test_per_example_state_is_sharded_and_the_same_on_1_and_8_devices',
    'test_platform::test_per_example_state_is_checkpointed_and_resumes_on_the_same_trajectory',
    'test_platform::test_phases_jit_once_each_serve_their_resolution_and_resume_mid_phase',
    'test_platform::test_a_phase_size_that_does_not_divide_the_image_size_is_refused',
}

_INTEGRATION_SOURCE = re.compile(
    r'\bsubprocess\b|\bPopen\b|\bmultiprocessing\b|\bos\.system\(|'
    r'\btrainer\.train\(|\bevaluate\.evaluate\(')


def _code_names(code):
  """Global names a code object (and the functions and lambdas nested in it) refers to."""
  names = set(code.co_names)
  for const in code.co_consts:
    if inspect.iscode(const):
      names |= _code_names(const)
  return names


def _matches(fn, module, seen):
  """Whether `fn`, or a function of `module` that it calls (transitively), matches the rule."""
  fn = inspect.unwrap(fn)
  if id(fn) in seen or not inspect.isfunction(fn) or fn.__module__ != module.__name__:
    return False
  seen.add(id(fn))
  try:
    if _INTEGRATION_SOURCE.search(inspect.getsource(fn)):
      return True
  except (OSError, TypeError):
    return False
  return any(_matches(getattr(module, name), module, seen)
             for name in _code_names(fn.__code__) if inspect.isfunction(getattr(module, name, None)))


def _source_rule(item):
  module = getattr(item, 'module', None)
  function = getattr(item, 'function', None)
  if module is None or function is None:
    return False
  seen = set()
  if _matches(function, module, seen):
    return True
  fixture_info = getattr(item, '_fixtureinfo', None)  # the fixtures this test uses
  for name in getattr(item, 'fixturenames', ()):
    for fixture_def in (getattr(fixture_info, 'name2fixturedefs', {}) or {}).get(name, ()):
      if _matches(getattr(fixture_def, 'func', None), module, seen):
        return True
  return False


def integration_reason(item):
  """Why `item` belongs to the integration tier (rules 1-3), or None."""
  module = item.path.stem
  name = f'{module}::{getattr(item, "originalname", item.name)}'
  if module in INTEGRATION_MODULES:
    return f'module {module} is in INTEGRATION_MODULES'
  for listed in (name, f'{module}::{item.name}'):
    if listed in INTEGRATION_TESTS:
      return f'{listed} is in INTEGRATION_TESTS'
  if name not in KEEP_FAST and _source_rule(item):
    return 'starts a subprocess or runs the training loop'
  return None


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
  for item in items:
    if item.get_closest_marker('slow') or item.get_closest_marker('integration'):
      continue
    reason = integration_reason(item)
    if reason:
      item.add_marker(pytest.mark.integration(reason=reason))
