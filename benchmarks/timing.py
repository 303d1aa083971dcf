"""Interleaved wall-clock timing and the machine's GEMM rate (float32 or bfloat16)."""
import time

import jax
import jax.numpy as jnp
import numpy as np


def seconds(fn) -> float:
  """Wall time of one call of `fn()` (which must block until its result is ready)."""
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def rounds(fns: dict, repeats: int) -> dict:
  """{name: [seconds of each call]} of each fn in {name: fn}, called in turn `repeats` times
  (entry i of every list is from round i)."""
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      times[name].append(seconds(fn))
  return times


def interleaved(fns: dict, repeats: int) -> dict:
  """Median seconds per call of each fn in {name: fn}, calling them in turn `repeats` times."""
  return {name: float(np.median(t)) for name, t in rounds(fns, repeats).items()}


def paired_ratio(numerator: list, denominator: list) -> dict:
  """Median and quartiles of the per-round ratios numerator[i] / denominator[i] of two
  `rounds` lists: a drift of the machine's speed between rounds cancels in each ratio."""
  ratios = np.asarray(numerator) / np.asarray(denominator)
  q25, median, q75 = np.percentile(ratios, [25, 50, 75])
  return {'median': float(median), 'q25': float(q25), 'q75': float(q75)}


def gemm(n: int = 1024, dtype=jnp.float32):
  """A blocking call of a jitted (n, n) @ (n, n) in `dtype` and its FLOPs, 2n^3."""
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), dtype)
  dot = jax.jit(jnp.dot)
  dot(a, b).block_until_ready()
  return lambda: dot(a, b).block_until_ready(), 2.0 * n ** 3


def compiled_call(fn, *args):
  """(blocking call of jit(fn) on `args`, its compile seconds, its first result)."""
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  compile_s = time.perf_counter() - start
  result = jax.block_until_ready(compiled(*args))
  return lambda: jax.block_until_ready(compiled(*args)), compile_s, result
