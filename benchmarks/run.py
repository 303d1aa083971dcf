"""Runs every benchmark, prints a table and writes benchmarks/RESULTS.md.

    python -m benchmarks.run [--quick]

Throughput is always reported beside a rate measured in the same process (GEMM, PyTorch);
the machine is noisy, so calls are interleaved and medians reported (DESIGN.md §7).
"""
import argparse
import glob
import json
import os
import platform
import subprocess
import sys

import jax

from benchmarks import compile_time, flax_fast_path, langevin_speed, memory, precision, torch_chain
from benchmarks import conv_layers, flax_generator, mesh_updates, torch_updates, training
from egm.cpu import host_memory
from egm.cpu import onednn_build

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# XLA:CPU options compared in subprocesses (each needs a fresh process).
SECTIONS = ('langevin', 'flags', 'precision', 'flax', 'flax_generator', 'compile', 'memory',
            'training', 'scaling', 'mesh_updates', 'torch_updates', 'conv_layers')
FLAG_OPTIONS = ['', '--xla_cpu_use_onednn=true', '--xla_cpu_use_xnnpack=true',
                '--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY']


def machine() -> str:
  """CPU model, core count, load and library versions."""
  model = platform.processor()
  if os.path.exists('/proc/cpuinfo'):
    with open('/proc/cpuinfo') as f:
      names = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
    model = names[0] if names else model
  torch_version = 'not installed'
  if torch_chain.available():
    import torch  # pylint: disable=import-outside-toplevel
    torch_version = f'{torch.__version__} ({torch_chain.threads()} threads)'
  return (f'{model}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; '
          f'{platform.platform()}; Python {platform.python_version()}; jax {jax.__version__} '
          f'({jax.default_backend()}, {jax.device_count()} device(s)); torch {torch_version}; '
          f'host malloc {host_memory.choice()}: {host_memory.in_effect()} (egm/cpu/host_memory.py)')


def langevin_rows(batches, repeats) -> list:
  """Section 1-2: one row per chain and batch."""
  rows = []
  for batch in batches:
    impls = (('onednn',) if onednn_build.available() else ()) + (
        ('matmul', 'lax') if batch == batches[0] else ('matmul',))
    rows += langevin_speed.rows(langevin_speed.measure(batch, repeats, impls), f'B={batch} ')
  return rows


def flag_rows(batch, repeats) -> list:
  """XLA:CPU flags, each in its own process: egm chains vs the PyTorch chain timed beside them."""
  rows = []
  for flags in FLAG_OPTIONS:
    env = dict(os.environ, XLA_FLAGS=flags)
    command = [sys.executable, '-m', 'benchmarks.langevin_speed', str(batch), str(repeats),
               'matmul']
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
      rows.append([flags or '(default)', 'failed: ' + proc.stderr.strip()[-200:], '', '', ''])
      continue
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    torch_s = min(r[k]['s_per_step'] for k in r if k.startswith('torch'))
    e = r['egm_matmul']
    rows.append([flags or '(default)', f'{e["s_per_step"]:.3f} s/step', f'{e["gemm_fraction"]:.2f}',
                 f'{torch_s / e["s_per_step"]:.2f}', f'{r["gemm_gflops"]:.1f}'])
  return rows


def precision_rows(batch, repeats, gemm_size: int = 1024) -> list:
  """bfloat16 vs float32 energy: speed, fraction of each precision's GEMM rate (a `gemm_size`
  square `jnp.dot`), sample change."""
  r = precision.measure(batch, repeats, gemm_size=gemm_size)
  rows = []
  for dtype in ('float32', 'bfloat16'):
    d = r[dtype]
    rows.append([dtype, f'{d["s_per_step"] * 1e3:.2f} ms/step', f'{d["gflops"]:.1f}',
                 f'{d["gemm_gflops"]:.1f}', f'{d["gemm_fraction"]:.2f}',
                 f'{r["float32"]["s_per_step"] / d["s_per_step"]:.2f}'])
  change = r['sample_rms_difference'] / r['sample_rms_moved']
  rows.append([f'samples after {r["sample_steps"]} steps',
               f'rms(x_bf16 - x_f32) / rms(x_f32 - x0) = {change:.3g}', '', '', '', ''])
  return rows


def compile_rows(steps) -> list:
  """Section 3: compile seconds per K and the ratio to the smallest K."""
  seconds = {k: compile_time.seconds(k) for k in steps}
  return [[f'K={k}', f'{s:.1f} s', f'{s / seconds[steps[0]]:.2f}'] for k, s in seconds.items()]


def memory_rows(steps) -> list:
  """Section 4: XLA temp bytes of the gradient through K steps, with and without remat."""
  rows = []
  for remat in (False, True):
    mib = {k: memory.temp_bytes(k, remat) / 2 ** 20 for k in steps}
    rows.append([f'remat={remat}'] + [f'{mib[k]:.0f} MiB' for k in steps] +
                [f'{mib[steps[-1]] / mib[steps[0]]:.2f}'])
  return rows


def training_rows(args, quick) -> list:
  """Section 5: steps/s of every config's smoke version, and of each *_cifar reference config."""
  rows, mesh = [], training.trainer.parallel.make_mesh()
  paths = sorted(p for p in glob.glob(os.path.join(REPO, 'configs', '*.py'))
                 if not p.endswith('default.py'))
  for path in paths:
    name = os.path.relpath(path, REPO)
    reference = not quick and name.endswith('_cifar.py')
    for arg in ('smoke', '') if reference else ('smoke',):
      label = f'{name}:{arg}' if arg else name
      try:
        r = training.steps_per_second(training.load_config(name, arg), mesh,
                                      max_seconds=args.train_seconds if arg else 0.0)
      except Exception as e:  # pylint: disable=broad-except
        rows.append([label, 'skipped', f'{type(e).__name__}: {str(e).splitlines()[0][:80]}', ''])
        continue
      rows.append([label, str(r['batch']), f'{r["steps_per_s"]:.3g}', f'{r["compile_s"]:.1f} s'])
  return rows


def scaling_rows(config_name) -> list:
  """Steps/s of one config on 1 and on 2 forced host devices (subprocesses)."""
  rows = []
  for devices in (1, 2):
    env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
    code = ('import json; from benchmarks import training as t; '
            f'c = t.load_config({config_name!r}, "smoke"); c.train.batch_size = 32; '
            'print(json.dumps(t.steps_per_second(c, t.trainer.parallel.make_mesh())))')
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True,
                          text=True, check=False)
    if proc.returncode:
      rows.append([str(devices), 'failed: ' + proc.stderr.strip()[-200:], ''])
      continue
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    rows.append([str(devices), f'{r["steps_per_s"]:.3g}', f'{r["compile_s"]:.1f} s'])
  return rows


def table(header, rows) -> str:
  """A markdown table."""
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  return '\n'.join(lines + ['| ' + ' | '.join(r) + ' |' for r in rows])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--quick', action='store_true', help='batch 64, fewer repeats, smoke configs')
  parser.add_argument('--repeats', type=int, default=0, help='timed calls per chain (0: auto)')
  parser.add_argument('--train-seconds', type=float, default=20.0)
  parser.add_argument('--only', default=','.join(SECTIONS),
                      help=f'comma-separated sections to run, from {",".join(SECTIONS)}')
  parser.add_argument('--out', default=os.path.join(HERE, 'RESULTS.md'))
  args = parser.parse_args()
  host_memory.apply_choice()  # EGM_HOST_MALLOC, before JAX runs anything
  only = args.only.split(',')
  repeats = args.repeats or 3
  command = ' '.join(['python -m benchmarks.run'] + sys.argv[1:])
  sections = [f'# egm benchmark results\n\nMachine: {machine()}\n\nCommand: `{command}`. '
              'Options tried beyond these tables, and what each gave: [OPTIONS.md](OPTIONS.md).\n']

  def emit(title, header, rows):
    sections.append(f'## {title}\n\n{table(header, rows)}\n')
    print(sections[-1], flush=True)
    with open(args.out, 'w') as f:  # after every section, so a cut-short run leaves its part
      f.write('\n'.join(sections))

  if 'langevin' in only:
    emit('Langevin chain: ConvEnergy(width=64), 32x32x3, ~410 MFLOP per image per step',
         ['chain', 'time', 'GFLOP/s', 'of GEMM rate', 'speed vs best PyTorch'],
         langevin_rows((64,) if args.quick else (64, 128), repeats))
  if 'flags' in only:
    emit('XLA:CPU flags (batch 64, conv=matmul, each in its own process, PyTorch timed beside)',
         ['XLA_FLAGS', 'egm chain', 'of GEMM rate', 'speed vs PyTorch', 'GEMM GFLOP/s'],
         flag_rows(64, max(2, repeats - 1)))
  if 'precision' in only:
    emit('Energy compute precision (batch 64, model.energy_dtype; chain states float32)',
         ['energy dtype', 'chain', 'GFLOP/s', 'GEMM GFLOP/s (same dtype)', 'of GEMM rate',
          'speed-up vs float32'], precision_rows(64, repeats))
  if 'flax' in only:
    emit(f'A plain flax.linen ConvNet energy (batch 64, K={flax_fast_path.STEPS_PER_CALL} '
         'steps per call, timed in turn): egm.cpu.fast_convolutions',
         ['chain', 'time', 'speed vs egm modules', 'compile'], flax_fast_path.rows(64, repeats))
  if 'flax_generator' in only:
    emit(f'A plain flax.linen DCGAN generator (nn.ConvTranspose) in a posterior Langevin chain '
         f'(batch 64, K={flax_generator.STEPS_PER_CALL} steps per call, timed in turn): '
         'egm.cpu.fast_convolutions', ['chain', 'time', 'speed vs plain flax', 'compile'],
         flax_generator.rows(64, repeats))
  if 'compile' in only:
    emit('Compile time of the K-step sampler (batch 64)', ['K', 'compile', 'ratio to K=10'],
         compile_rows((10, 100, 500)))
  if 'memory' in only:
    emit('Gradient through a K-step chain: XLA temp memory (batch 64)',
         ['', 'K=10', 'K=100', 'K=100 / K=10'], memory_rows((10, 100)))
  if 'training' in only:
    emit('Training steps/s (synthetic batches, one device; reference configs: one timed step)',
         ['config', 'batch', 'steps/s', 'first step (compile)'], training_rows(args, args.quick))
  if 'scaling' in only:
    emit('Scaling: configs/ebm_cifar.py:smoke at batch 32, forced host devices',
         ['devices', 'steps/s', 'first step'], scaling_rows('configs/ebm_cifar.py'))
  if 'mesh_updates' in only:
    emit(f'Training steps on 8 forced host devices: oneDNN split along the batch vs XLA\'s '
         f'partitioned convolutions (medians of {repeats} alternating calls; '
         'benchmarks/mesh_updates.py)', mesh_updates.HEADER,
         mesh_updates.rows(['vae', 'coopnets', 'triangle'], 8, 64, repeats))
  if 'torch_updates' in only and torch_chain.available():
    emit(f'Whole training steps: egm vs PyTorch, same networks and losses (synthetic batches, '
         f'medians of {repeats} alternating calls; benchmarks/torch_updates.py)',
         torch_updates.HEADER, torch_updates.rows(list(torch_updates.CASES), repeats))
  if 'conv_layers' in only and torch_chain.available():
    emit(f'One 3x3 convolution layer, forward and both gradients: egm vs PyTorch (batch 100, '
         f'medians of {repeats} alternating calls; benchmarks/conv_layers.py)',
         conv_layers.HEADER, conv_layers.rows(100, repeats))
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
