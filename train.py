"""Trains a model: python train.py --config configs/triangle_toy2d.py --workdir runs/toy."""
from absl import flags

from egm import cli

_CONFIG, _WORKDIR = cli.define_run_flags('A configs/*.py file, optionally with :smoke.')
flags.adopt_module_key_flags(cli)


def main(argv):
  del argv
  cli.initialize_distributed()
  from egm import trainer  # after flag parsing, so --help is fast
  trainer.train(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  cli.run(main)
