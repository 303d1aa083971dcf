"""Evaluates the newest checkpoint: python eval.py --config configs/X.py --workdir runs/X."""
from absl import flags
from ml_collections import config_flags

from egm import cli

_CONFIG = config_flags.DEFINE_config_file('config', None, 'The config the run was trained with.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'The run directory holding checkpoints/.')
flags.mark_flags_as_required(['config', 'workdir'])
cli.define_distributed_flags()


def main(argv):
  del argv
  cli.initialize_distributed()
  from egm.evaluation import evaluate
  evaluate.evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  cli.run(main)
