"""Evaluates the newest checkpoint: python eval.py --config configs/X.py --workdir runs/X."""
from absl import flags

from egm import cli

_CONFIG, _WORKDIR = cli.define_run_flags('The config the run was trained with.')
flags.adopt_module_key_flags(cli)


def main(argv):
  del argv
  cli.initialize_distributed()
  from egm.evaluation import evaluate  # after flag parsing, so --help is fast
  evaluate.evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  cli.run(main)
