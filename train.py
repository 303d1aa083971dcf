"""Trains a model: python train.py --config configs/triangle_toy2d.py --workdir runs/toy."""
from absl import flags
from ml_collections import config_flags

from egm import cli

_CONFIG = config_flags.DEFINE_config_file('config', None, 'A configs/*.py file, optionally :smoke.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and samples.')
flags.mark_flags_as_required(['config', 'workdir'])
cli.define_distributed_flags()


def main(argv):
  del argv
  cli.initialize_distributed()
  from egm import trainer  # after flag parsing, so --help is fast
  trainer.train(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  cli.run(main)
