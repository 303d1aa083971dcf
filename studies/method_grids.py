"""Trains every generative method briefly on scikit-learn's 8x8 digits (no download) and writes
one small sample grid per method for the README's methods table, under docs/images/.

    python -m studies.method_grids --budget_minutes 2 --out runs/method_grids

Each method runs its Fashion-MNIST config (`configs/<method>_fashion.py`, else
`configs/triangle_fashion.py --config.method=<method>`) on the digits for the time budget
(`train.max_minutes`, compilation included), then `eval.py` draws 36 samples
(`eval/samples.png`), copied to `docs/images/<method>_digits.png`. The grids show what each
method does in minutes on a CPU, not converged models.
"""
import os
import shutil
import subprocess
import sys

from absl import app, flags

from studies.method_configs import entries

_BUDGET = flags.DEFINE_float('budget_minutes', 2.0, 'Training wall-clock budget per method.')
_OUT = flags.DEFINE_string('out', 'runs/method_grids', 'Directory of the runs.')
_IMAGES = flags.DEFINE_string('images', 'docs/images', 'Where the grids are copied.')
_METHODS = flags.DEFINE_list('methods', [], 'Methods to run (default: every generative one).')
DIGITS = ['--config.data.source=sklearn:digits', '--config.data.image_size=8',
          '--config.data.channels=1', '--config.data.max_examples=0', '--config.data.holdout=0']


def grid(name: str, config: str, extra: list[str]) -> str:
  """Trains and evaluates `name` on the digits; returns the path of its copied grid."""
  workdir = os.path.join(_OUT.value, name)
  common = [f'--config={config}', f'--workdir={workdir}', *DIGITS, *extra]
  for command in (['train.py', *common, f'--config.train.max_minutes={_BUDGET.value}'],
                  ['eval.py', *common, '--config.eval.metrics=samples',
                   '--config.eval.num_samples=36']):
    subprocess.run([sys.executable, *command], check=True)
  os.makedirs(_IMAGES.value, exist_ok=True)
  target = os.path.join(_IMAGES.value, f'{name}_digits.png')
  shutil.copyfile(os.path.join(workdir, 'eval', 'samples.png'), target)
  return target


def main(argv):
  del argv
  for name, config, extra in entries(_METHODS.value):
    print(f'{name}: {grid(name, config, extra)}', flush=True)


if __name__ == '__main__':
  app.run(main)
