"""Langevin throughput of egm's chain beside the jnp.dot GEMM rate and the PyTorch chain.

`python -m benchmarks.langevin_speed BATCH REPEATS IMPLS` prints one JSON line: run.py runs it
in subprocesses with different XLA_FLAGS to compare XLA:CPU options (benchmarks/run.py).
"""
import json
import os
import sys

from benchmarks import chain, timing, torch_chain

STEPS_PER_CALL = 10  # egm's K-step chain also evaluates dE/dx at x0: K+1 passes, K counted


def measure(batch: int, repeats: int, impls=('matmul', 'lax'), with_torch=True,
            torch_device: str = 'cpu', gemm_size: int = 1024) -> dict:
  """Median s/step, GFLOP/s and fraction of the GEMM rate (a `gemm_size` square float32
  `jnp.dot`) of each chain, timed in turn; the PyTorch chains on `torch_device`."""
  calls = {}
  for impl in impls:
    calls[f'egm_{impl}'] = chain.blocking_call(batch, STEPS_PER_CALL, conv_impl=impl)[0]
  if with_torch and torch_chain.available():
    for channels_last in (False, True):
      run = torch_chain.make(batch, STEPS_PER_CALL, channels_last=channels_last,
                             device=torch_device)
      run()
      calls['torch_channels_last' if channels_last else 'torch_nchw'] = run
  gemm, gemm_flops = timing.gemm(gemm_size)
  calls['gemm'] = gemm
  seconds = timing.interleaved(calls, repeats)
  gemm_rate = gemm_flops / seconds.pop('gemm') / 1e9
  result = {'batch': batch, 'gemm_gflops': gemm_rate, 'xla_flags': os.environ.get('XLA_FLAGS', '')}
  for name, s in seconds.items():
    result[name] = chain.throughput(s, STEPS_PER_CALL, batch, gemm_rate)
  return result


if __name__ == '__main__':
  print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(','))))
