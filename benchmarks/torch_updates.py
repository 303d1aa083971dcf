"""Whole training steps: egm's jitted update against the same update in PyTorch, in turn.

  python -m benchmarks.torch_updates [--methods triangle,vae,...] [--rounds 10]

Per method (its Fashion-MNIST config, and the triangle's CIFAR reference config) one process
builds egm's update as the trainer jits it (`training.jitted_update`, on JAX's default
backend) and the PyTorch update of torch_method_steps.py in NCHW and in channels-last memory
format on the same synthetic batch (on `torch_device()`: CUDA beside a JAX GPU, else the
CPU), and calls the three in turn `rounds` times. It reports the median seconds per step of
each and the ratio best PyTorch / egm (>= 1: egm is faster), DESIGN.md §7: the median of the
per-round ratios with their quartiles, so that the machine's drift between rounds cancels.
"""
import argparse
import json
import os
import time

import jax
import numpy as np

from benchmarks import timing, training
from egm.cpu import host_memory

# name: (config file, config overrides as 'key=value' items)
CASES = {
    'triangle': ('configs/triangle_fashion.py', ''),
    'vae': ('configs/triangle_fashion.py', 'method=vae'),
    'ebm': ('configs/ebm_fashion.py', ''),
    'coopnets': ('configs/coopnets_fashion.py', ''),
    'abp': ('configs/abp_fashion.py', ''),
    'srinf': ('configs/srinf_fashion.py', ''),
    'triangle_cifar': ('configs/triangle_cifar.py', ''),
}


def load(case: str, batch_size: int = 0):
  """The config of `case`, at `batch_size` when > 0."""
  path, arg = CASES[case]
  config = training.load_config(path, arg)
  if batch_size:
    config.train.batch_size = batch_size
  return config


def egm_step(config, mesh):
  """A blocking call of one jitted update (the state carried from call to call) and the
  synthetic batch it trains on (numpy, NHWC)."""
  update, state, batch, key = training.jitted_update(config, mesh)
  carry = {'state': state}

  def step():
    carry['state'], metrics = update(carry['state'], batch, key)
    jax.block_until_ready(metrics)

  return step, np.asarray(jax.device_get(batch['x']))


def torch_device() -> str:
  """'cuda' where JAX runs on a GPU and torch sees one, else 'cpu'."""
  import torch  # pylint: disable=import-outside-toplevel
  return 'cuda' if jax.default_backend() == 'gpu' and torch.cuda.is_available() else 'cpu'


def torch_steps(config, x_nhwc, device: str = 'cpu') -> dict:
  """{'torch_nchw': step, 'torch_channels_last': step} on the batch x (B, S, S, C), each a
  blocking call on `device`."""
  import torch  # pylint: disable=import-outside-toplevel
  from benchmarks import torch_method_steps  # pylint: disable=import-outside-toplevel
  x = torch.from_numpy(np.array(x_nhwc.transpose(0, 3, 1, 2))).to(device)

  def blocking(step):
    if device == 'cpu':
      return step
    def call():
      step()
      torch.cuda.synchronize()
    return call

  return {name: blocking(torch_method_steps.make(config, x, channels_last))
          for name, channels_last in (('torch_nchw', False), ('torch_channels_last', True))}


def _cpu_timed(fn, record: list):
  """`fn` that also appends the process CPU seconds (all threads) of each call to `record`."""
  def timed():
    start = time.process_time()
    fn()
    record.append(time.process_time() - start)
  return timed


def measure(case: str, rounds: int, batch_size: int = 0, device: str = 'cpu') -> dict:
  """Median wall and process-CPU s/step of egm and both PyTorch layouts (on `device`),
  called in turn, and the per-round ratios faster PyTorch / egm; compile and warm-up steps
  excluded."""
  config = load(case, batch_size)
  egm, x = egm_step(config, training.trainer.parallel.make_mesh())
  fns = {'egm': egm, **torch_steps(config, x, device)}
  compile_s = timing.seconds(egm)
  for name, fn in fns.items():
    if name != 'egm':
      fn()  # warm-up
  cpu = {name: [] for name in fns}
  times = timing.rounds({name: _cpu_timed(fn, cpu[name]) for name, fn in fns.items()}, rounds)
  seconds = {name: float(np.median(t)) for name, t in times.items()}
  best = min(('torch_nchw', 'torch_channels_last'), key=seconds.get)
  ratio = timing.paired_ratio(times[best], times['egm'])
  path, arg = CASES[case]
  return {'case': case, 'config': f'{path}:{arg}' if arg else path,
          'batch': config.train.batch_size, 'rounds': rounds, 'egm_compile_s': compile_s,
          'backend': jax.default_backend(), 'torch_device': device,
          'host_malloc': host_memory.choice(), 'allocator': host_memory.in_effect(),
          **{f'{k}_s': v for k, v in seconds.items()}, 'torch_best': best,
          **{f'{k}_cpu_s': float(np.median(v)) for k, v in cpu.items()},
          'ratio': ratio['median'], 'ratio_q25': ratio['q25'], 'ratio_q75': ratio['q75'],
          'load': os.getloadavg()[0]}


def rows(cases, rounds: int, batch_sizes: dict | None = None, device: str = 'cpu') -> list:
  """Markdown rows of HEADER, one per case."""
  out = []
  for case in cases:
    r = measure(case, rounds, (batch_sizes or {}).get(case, 0), device)
    best_cpu = min(r['torch_nchw_cpu_s'], r['torch_channels_last_cpu_s'])
    out.append([case, r['config'], str(r['batch'])] +
               [f'{r[f"{k}_s"]:.2f} ({r[f"{k}_cpu_s"]:.2f})'
                for k in ('egm', 'torch_nchw', 'torch_channels_last')] +
               [r['torch_best'].removeprefix('torch_'),
                f'{r["ratio"]:.2f} ({r["ratio_q25"]:.2f}–{r["ratio_q75"]:.2f})',
                f'{best_cpu / r["egm_cpu_s"]:.2f}', f'{r["load"]:.1f}'])
    print(json.dumps(r), flush=True)
  return out


HEADER = ['method', 'config', 'batch', 'egm s/step (CPU s)', 'PyTorch NCHW s/step (CPU s)',
          'PyTorch channels-last s/step (CPU s)', 'faster PyTorch (wall)',
          'ratio PyTorch/egm, median of rounds (quartiles)', 'ratio of CPU s', 'load']


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--methods', default=','.join(CASES))
  parser.add_argument('--rounds', type=int, default=10)
  parser.add_argument('--batch', default='', help='case=batch items, e.g. triangle_cifar=50')
  args = parser.parse_args()
  host_memory.apply_choice()  # EGM_HOST_MALLOC, before JAX runs anything
  sizes = {k: int(v) for k, v in (item.split('=') for item in args.batch.split(',') if item)}
  rows(args.methods.split(','), args.rounds, sizes, torch_device())


if __name__ == '__main__':
  main()
