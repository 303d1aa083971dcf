"""The benchmarks' paired ratios, and `benchmarks.accelerator` run end to end on the CPU (the
dry run of the GPU tables: the same code with PyTorch on the CPU)."""
import importlib.util
import os
import subprocess
import sys

import pytest

from benchmarks import timing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_paired_ratio_is_the_median_and_quartiles_of_the_per_round_ratios():
  # Rounds at different machine speeds, a constant ratio 2 within each: it is exactly 2.
  r = timing.paired_ratio([2.0, 8.0, 0.6, 40.0], [1.0, 4.0, 0.3, 20.0])
  assert r == pytest.approx({'median': 2.0, 'q25': 2.0, 'q75': 2.0})
  # Per-round ratios 1..5 in shuffled order: median 3, quartiles 2 and 4 (linear percentiles).
  r = timing.paired_ratio([3.0, 10.0, 2.0, 20.0, 1.0], [1.0, 2.0, 1.0, 5.0, 1.0])
  assert r == pytest.approx({'median': 3.0, 'q25': 2.0, 'q75': 4.0})


def test_rounds_calls_each_function_in_turn():
  order = []
  times = timing.rounds({'a': lambda: order.append('a'), 'b': lambda: order.append('b')}, 3)
  assert order == ['a', 'b'] * 3
  assert {k: len(v) for k, v in times.items()} == {'a': 3, 'b': 3}


def test_accelerator_tables_on_the_cpu(tmp_path):
  env = dict(os.environ, XLA_FLAGS='')  # one device: the update's batch of 100 is not split
  command = [sys.executable, '-m', 'benchmarks.accelerator', '--methods', 'vae', '--rounds',
             '1', '--repeats', '1', '--chain-batch', '4', '--gemm-size', '64', '--out',
             str(tmp_path)]
  proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  text = (tmp_path / 'accelerator.md').read_text()
  assert 'Langevin chain' in text and '| egm_auto |' in text and 'jnp.dot 64^2 float32' in text
  assert '| bfloat16 |' in text and 'samples after 100 steps' in text
  has_torch = importlib.util.find_spec('torch') is not None
  assert ('| vae | configs/triangle_fashion.py:method=vae | 100 |' in text) == has_torch
  assert ('PyTorch on cpu' in text) == has_torch
