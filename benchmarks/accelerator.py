"""The accelerator tables in one call: each method's update against PyTorch on the same device,
the Langevin chain against the device's own GEMM rate, and the bfloat16 energy's speed-up.

  python -m benchmarks.accelerator [--out DIR] [--rounds 10] [--methods triangle,vae,...]

JAX runs on its default backend; PyTorch on CUDA beside a JAX GPU (`torch_updates.torch_device`),
else on the CPU, where the same code runs as a dry run of the tables. The GEMM rate is a
square float32 (bfloat16 for the bf16 row) `jnp.dot` of `--gemm-size` (default 8192 on a GPU,
1024 elsewhere). Prints markdown tables and JSON lines as it goes and, with `--out`, writes
DIR/accelerator.md after every section (a cut-short run keeps its part). JAX's GPU memory pool
is 45% of the device (`XLA_PYTHON_CLIENT_MEM_FRACTION`, unless set), the rest PyTorch's.
"""
import argparse
import os
import sys

import jax

from benchmarks import langevin_speed, run, torch_chain, torch_updates
from egm.cpu import host_memory

# name: (accelerator default, CPU default)
DEFAULTS = {'gemm_size': (8192, 1024), 'chain_batch': (512, 64)}


def on_accelerator() -> bool:
  """Whether JAX's default backend is not the CPU."""
  return jax.default_backend() != 'cpu'


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--methods', default=','.join(torch_updates.CASES))
  parser.add_argument('--rounds', type=int, default=10, help='alternating calls per update')
  parser.add_argument('--repeats', type=int, default=10, help='alternating calls per chain')
  parser.add_argument('--gemm-size', type=int, default=0, help='0: by backend')
  parser.add_argument('--chain-batch', type=int, default=0, help='0: by backend')
  parser.add_argument('--out', default='', help='a directory for accelerator.md')
  args = parser.parse_args(argv)
  host_memory.apply_choice()  # EGM_HOST_MALLOC, before JAX runs anything
  # JAX takes 75% of a GPU's memory on first use by default: leave half to PyTorch.
  os.environ.setdefault('XLA_PYTHON_CLIENT_MEM_FRACTION', '0.45')
  pick = lambda name: getattr(args, name) or DEFAULTS[name][0 if on_accelerator() else 1]
  gemm_size, batch = pick('gemm_size'), pick('chain_batch')
  device = torch_updates.torch_device() if torch_chain.available() else 'none'
  command = ' '.join(['python -m benchmarks.accelerator'] + (argv or sys.argv[1:]))
  sections = [f'# egm on {jax.devices()[0].device_kind}\n\nMachine: {run.machine()}; '
              f'PyTorch on {device}.\n\nCommand: `{command}`.\n']

  def emit(title, header, rows):
    sections.append(f'## {title}\n\n{run.table(header, rows)}\n')
    print(sections[-1], flush=True)
    if args.out:
      os.makedirs(args.out, exist_ok=True)
      with open(os.path.join(args.out, 'accelerator.md'), 'w') as f:
        f.write('\n'.join(sections))

  emit(f'Langevin chain: ConvEnergy(width=64), 32x32x3, batch {batch} '
       f'({langevin_speed.STEPS_PER_CALL} steps per call, {args.repeats} alternating calls)',
       ['chain', 'time', 'GFLOP/s', 'of GEMM rate', 'speed vs best PyTorch'],
       langevin_speed.rows(langevin_speed.measure(
           batch, args.repeats, ('auto', 'matmul'), device != 'none', device, gemm_size)))
  emit(f'Energy compute precision (batch {batch}, model.energy_dtype; chain states float32)',
       ['energy dtype', 'chain', 'GFLOP/s', 'GEMM GFLOP/s (same dtype)', 'of GEMM rate',
        'speed-up vs float32'], run.precision_rows(batch, args.repeats, gemm_size))
  if device != 'none':
    emit(f'Whole training steps: egm vs PyTorch on {device}, same networks and losses '
         f'(synthetic batches, {args.rounds} alternating calls; benchmarks/torch_updates.py)',
         torch_updates.HEADER,
         torch_updates.rows(args.methods.split(','), args.rounds, device=device))


if __name__ == '__main__':
  main()
