"""Flag parsing for the entry points: user mistakes become one paragraph, not a traceback."""
import sys

from absl import app, flags, logging

from egm.errors import EgmError


def parse_flags(argv):
  """absl flag parser that turns bad `--config` files and overrides into EgmError text."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    detail = str(e)
    if 'Traceback' in detail:  # a config file that raised: keep its final line
      detail = [line for line in detail.splitlines() if line.strip()][-1]
    message = f'{detail}. Run with --helpshort to see the flags.'
  except (AttributeError, KeyError) as e:
    detail = str(e).strip('\'"').replace('\\n', ' ').replace('\\', '')
    message = (f'Unknown config key in a --config.<key>=<value> override: {detail}. Every key is '
               'declared in egm/config_defaults.py; print a resolved config with --config=FILE '
               '--helpfull, or see config.json in a workdir.')
  except (TypeError, ValueError) as e:
    message = (f'Bad --config argument: {e}. Pass --config=configs/NAME.py, optionally with '
               '":smoke" for a seconds-long run, and overrides as --config.<key>=<value>.')
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def define_run_flags(config_help: str):
  """The flags of train.py and eval.py; returns the (config, workdir) flag holders."""
  from ml_collections import config_flags
  config = config_flags.DEFINE_config_file('config', None, config_help, lock_config=True)
  workdir = flags.DEFINE_string('workdir', None, 'The run directory: checkpoints, logs, samples.')
  flags.mark_flags_as_required(['config', 'workdir'])
  _define_distributed_flags()
  return config, workdir


def _define_distributed_flags():
  """Flags for multi-process runs; all unset means one process (or cluster auto-detection)."""
  flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() (auto-detects TPU '
                    'pods, SLURM, ...); implied by --coordinator_address.')
  flags.DEFINE_string('coordinator_address', None, 'host:port of process 0, for a manual launch.')
  flags.DEFINE_integer('num_processes', None, 'Number of processes, for a manual launch.')
  flags.DEFINE_integer('process_id', None, 'This process\'s index, for a manual launch.')


def initialize_distributed():
  """Joins the processes of a multi-process run, as the distributed flags ask."""
  import jax
  f = flags.FLAGS
  if f.distributed or f.coordinator_address:
    jax.distributed.initialize(f.coordinator_address, f.num_processes, f.process_id)


def run(main):
  """`app.run(main)` where an EgmError raised by `main` prints its message and exits 2."""
  def guarded(argv):
    if not flags.FLAGS['verbosity'].present:
      logging.set_verbosity(logging.WARNING)  # library INFO logs (Orbax) drown the progress lines
    try:
      return main(argv)
    except EgmError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
  app.run(guarded, flags_parser=parse_flags)
