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
  result = {'batch': batch, 'gemm_size': gemm_size, 'gemm_gflops': gemm_rate,
            'xla_flags': os.environ.get('XLA_FLAGS', '')}
  for name, s in seconds.items():
    result[name] = chain.throughput(s, STEPS_PER_CALL, batch, gemm_rate)
  return result


def rows(result: dict, label: str = '') -> list:
  """Table rows of a `measure` result, each name prefixed with `label`: chain, ms/step, GFLOP/s,
  fraction of the GEMM rate, speed against the faster PyTorch chain (blank without one); then
  the GEMM's own row."""
  torch_best = min((result[k]['s_per_step'] for k in result if k.startswith('torch')),
                   default=None)
  out = []
  for name in [k for k in result if isinstance(result[k], dict)]:
    chain_result = result[name]
    speed = f'{torch_best / chain_result["s_per_step"]:.2f}' if torch_best else ''
    out.append([label + name, f'{chain_result["s_per_step"] * 1e3:.2f} ms/step',
                f'{chain_result["gflops"]:.1f}', f'{chain_result["gemm_fraction"]:.2f}', speed])
  out.append([f'{label}jnp.dot {result["gemm_size"]}^2 float32', '',
              f'{result["gemm_gflops"]:.1f}', '1.00', ''])
  return out


if __name__ == '__main__':
  print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(','))))
