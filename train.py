"""Trains a model: python train.py --config configs/triangle_toy2d.py --workdir runs/toy."""
from absl import flags

from egm import cli
from egm.run import distributed

_CONFIG, _WORKDIR = cli.define_run_flags(
    'A configs/*.py file or config name, optionally with :smoke or :key=value,...')
flags.adopt_module_key_flags(cli)
flags.adopt_module_key_flags(distributed)


def main(argv):
  del argv
  cli.print_config_and_exit(_CONFIG.value)
  cli.check_run(_CONFIG.value, _WORKDIR.value)
  distributed.initialize()
  from egm.run import trainer  # after flag parsing, so --help is fast
  trainer.train(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  cli.run(main)
