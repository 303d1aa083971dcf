"""bfloat16 energy (`model.energy_dtype`) against float32: chain speed and effect on the samples.

Both chains start from the same x0 with the same noise; the bf16 chain's network computes in
bfloat16 while its states stay float32. Speed is compared with the GEMM rate at each precision
measured in the same process.
"""
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import chain, timing

STEPS_PER_CALL = 10


def measure(batch: int, repeats: int, sample_steps: int = 100, gemm_size: int = 1024) -> dict:
  """Per dtype: s/step, GFLOP/s, fraction of that dtype's GEMM rate (a `gemm_size` square
  `jnp.dot`); and the sample difference."""
  calls, chains = {}, {}
  for dtype in ('float32', 'bfloat16'):
    calls[dtype], params, x0 = chain.blocking_call(batch, STEPS_PER_CALL, compute_dtype=dtype)
    long_fn, _, _ = chain.make(batch, sample_steps, compute_dtype=dtype)
    chains[dtype] = np.asarray(long_fn(params, x0, jax.random.key(2)))
    start = np.asarray(x0)  # the same for both dtypes
  gemm_rates = {}
  for dtype in ('float32', 'bfloat16'):
    gemm, flops = timing.gemm(gemm_size, jnp.dtype(dtype))
    calls[f'gemm_{dtype}'] = gemm
    gemm_rates[dtype] = flops
  seconds = timing.interleaved(calls, repeats)
  result = {'batch': batch, 'sample_steps': sample_steps}
  for dtype in ('float32', 'bfloat16'):
    gemm_rate = gemm_rates[dtype] / seconds[f'gemm_{dtype}'] / 1e9
    result[dtype] = {**chain.throughput(seconds[dtype], STEPS_PER_CALL, batch, gemm_rate),
                     'gemm_gflops': gemm_rate}
  moved = np.sqrt(np.mean((chains['float32'] - start) ** 2))
  result['sample_rms_difference'] = float(np.sqrt(np.mean((chains['bfloat16'] - chains['float32'])
                                                          ** 2)))
  result['sample_rms_moved'] = float(moved)
  return result
