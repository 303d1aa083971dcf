"""Peak temporary memory of d(loss)/d(params) through a K-step chain, from XLA's memory analysis."""
import jax
import jax.numpy as jnp

from benchmarks import chain


def temp_bytes(n_steps: int, remat: bool, batch: int = 64) -> int:
  """XLA's temp allocation (bytes) of the compiled gradient of mean(x_K^2) wrt the energy params."""
  fn, params, x0 = chain.make(batch, n_steps, remat=remat)
  loss = lambda params: jnp.mean(jnp.square(fn(params, x0, jax.random.key(0))))
  compiled = jax.jit(jax.grad(loss)).lower(params).compile()
  return int(compiled.memory_analysis().temp_size_in_bytes)
