"""Compile time of the K-step sampler: a lax.scan compiles once, so it should be flat in K."""
import jax

from benchmarks import chain, timing


def seconds(n_steps: int, batch: int = 64) -> float:
  """Seconds to trace, lower and compile a fresh n_steps chain (no compilation cache hit)."""
  fn, params, x0 = chain.make(batch, n_steps)
  return timing.seconds(lambda: fn.lower(params, x0, jax.random.key(0)).compile())
