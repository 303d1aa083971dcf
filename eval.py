"""Evaluates a run: python eval.py --workdir runs/X (the run's own config.json is the config;
`--config.<key>=<value>` overrides it; `--config=FILE` is needed only without a config.json)."""
from absl import flags

from egm import cli
from egm.config import checks
from egm.run import distributed

_CONFIG, _WORKDIR = cli.define_run_flags(
    'Optional: the run\'s config.json is used; a config file only for a workdir without one.',
    config_required=False)
flags.adopt_module_key_flags(cli)
flags.adopt_module_key_flags(distributed)


def main(argv):
  del argv
  distributed.initialize()
  from egm.evaluation import evaluate  # after flag parsing, so --help is fast
  from egm.run import workdir
  given = _CONFIG.value if cli.config_given() else None
  cli.check_trained_workdir(_WORKDIR.value)
  config = workdir.run_config(_WORKDIR.value, given, cli.override_values())
  cli.print_config_and_exit(config)
  checks.check(config)
  evaluate.evaluate(config, _WORKDIR.value)


if __name__ == '__main__':
  cli.run(main)
