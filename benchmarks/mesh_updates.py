"""Training steps on a mesh of forced CPU host devices: oneDNN's convolution split along the
batch (egm.cpu.onednn_sharding) against XLA's partitioned convolutions, in turn.

  python -m benchmarks.mesh_updates [--devices 8] [--methods vae,coopnets,triangle]
                                    [--batch 64] [--rounds 5]

Per method one subprocess (XLA_FLAGS forces `--devices` host devices) builds the trainer's
jitted update over the full mesh twice from the same config: as 'auto' picks today (oneDNN on
CPU) and as it picks where oneDNN cannot be built (the GEMM path or `lax_conv`); the choice
is made while tracing, so the two programs live in one process and are called in turn
`rounds` times. Prints one JSON line per method: median seconds per step of each, the
speed-up, and compile seconds.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def measure(case: str, batch: int, rounds: int) -> dict:
  """One method's two updates on this process's devices, timed in turn."""
  from unittest import mock  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  from benchmarks import timing, torch_updates, training  # pylint: disable=import-outside-toplevel
  from egm.cpu import onednn_build  # pylint: disable=import-outside-toplevel

  config = torch_updates.load(case, batch)
  mesh = training.trainer.parallel.make_mesh()
  steps, compile_s = {}, {}
  for name, available in (('onednn', onednn_build.available()), ('xla', False)):
    with mock.patch.object(onednn_build, 'available', lambda available=available: available):
      start = time.perf_counter()
      step, _ = torch_updates.egm_step(config, mesh)
      step()
      compile_s[name] = time.perf_counter() - start
    steps[name] = step
  seconds = timing.interleaved(steps, rounds)
  return {'case': case, 'devices': jax.device_count(), 'batch': batch, 'rounds': rounds,
          'onednn_s': seconds['onednn'], 'xla_s': seconds['xla'],
          'speedup': seconds['xla'] / seconds['onednn'],
          'onednn_first_step_s': compile_s['onednn'], 'xla_first_step_s': compile_s['xla']}


def run(cases, devices: int, batch: int, rounds: int) -> list:
  """`measure` of each case in its own subprocess with `devices` forced host devices."""
  results = []
  for case in cases:
    env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
    command = [sys.executable, '-m', 'benchmarks.mesh_updates', '--child', case,
               '--batch', str(batch), '--rounds', str(rounds)]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode:
      results.append({'case': case, 'error': proc.stderr.strip()[-300:]})
    else:
      results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
  return results


HEADER = ['method', 'devices', 'batch', 'oneDNN s/step', "XLA's convolutions s/step",
          'speed-up', 'first step oneDNN / XLA']


def rows(cases, devices: int, batch: int, rounds: int) -> list:
  """The table of benchmarks/run.py's 'mesh_updates' section."""
  table = []
  for r in run(cases, devices, batch, rounds):
    if 'error' in r:
      table.append([r['case'], str(devices), str(batch), 'failed: ' + r['error'], '', '', ''])
      continue
    table.append([r['case'], str(r['devices']), str(r['batch']), f'{r["onednn_s"]:.3f}',
                  f'{r["xla_s"]:.3f}', f'{r["speedup"]:.2f}',
                  f'{r["onednn_first_step_s"]:.1f} / {r["xla_first_step_s"]:.1f} s'])
  return table


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--devices', type=int, default=8)
  parser.add_argument('--methods', default='vae,coopnets,triangle')
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--child', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(measure(args.child, args.batch, args.rounds)))
    return
  for result in run(args.methods.split(','), args.devices, args.batch, args.rounds):
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
  main()
