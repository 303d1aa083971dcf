"""Test session set-up: forced CPU devices (before jax is imported) and the repo on sys.path.

8 devices by default; `EGM_TEST_DEVICES=1` for the slow learning runs, which need no
collectives (on 2 cores, long runs over 8 virtual devices can starve XLA:CPU's collective
rendezvous).
"""
import os
import sys

DEVICES = os.environ.get('EGM_TEST_DEVICES', '8')
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           f' --xla_force_host_platform_device_count={DEVICES}').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)
