"""Flag parsing for the entry points: user mistakes become one paragraph, not a traceback."""
import sys

from absl import app, flags, logging

from egm.errors import EgmError


def parse_flags(argv):
  """absl flag parser that turns bad `--config` files and overrides into EgmError text."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    message = f'{e}. Run with --helpshort to see the flags.'
  except (AttributeError, KeyError) as e:
    detail = str(e).strip('\'"').replace('\\n', ' ').replace('\\', '')
    message = (f'Unknown config key in a --config.<key>=<value> override: {detail}. Every key is '
               'declared in configs/default.py; print a resolved config with --config=FILE '
               '--helpfull, or see config.json in a workdir.')
  except (TypeError, ValueError) as e:
    message = (f'Bad --config argument: {e}. Pass --config=configs/NAME.py, optionally with '
               '":smoke" for a seconds-long run, and overrides as --config.<key>=<value>.')
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


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
