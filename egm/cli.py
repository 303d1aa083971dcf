"""Flag parsing for the entry points: user mistakes become one paragraph, not a traceback.

`--config` takes a config file (`configs/triangle_cifar.py`, from any directory) or the
name of one of the repository's configs (`triangle_cifar`), optionally followed by a config
argument (`:smoke`, `:smoke,model.width=32`; see egm/config/arguments.py). Configs are not
installed with the package: they live in the repository's `configs/` folder, found next to
the `egm` package of a source checkout (`pip install -e .`).
"""
import os
import re
import sys
import tempfile

from absl import app, flags, logging

from egm.config import checks
from egm.cpu import host_memory
from egm.errors import EgmError
from egm.run import distributed

REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            'configs')


def available_configs() -> list[str]:
  """The names of the repository's configs (without .py)."""
  if not os.path.isdir(REPO_CONFIGS):
    return []
  return sorted(f[:-3] for f in os.listdir(REPO_CONFIGS)
                if f.endswith('.py') and f not in ('default.py', '__init__.py'))


def resolve_config_path(value: str) -> str:
  """`--config` VALUE with its file part resolved: a config name becomes the repository's
  file; a missing file is an EgmError listing the configs. The config's folder's parent goes
  on sys.path, so configs that import `configs.<other>` load from any directory."""
  path, sep, arg = value.partition(':')
  if not path.endswith('.py') and os.sep not in path and '/' not in path:
    path = os.path.join(REPO_CONFIGS, path + '.py')
  if not os.path.isfile(path):
    raise EgmError(
        f'The config file {path!r} does not exist (relative paths start from {os.getcwd()}). '
        f'Pass a file, e.g. --config=configs/triangle_digits.py, or the name of one of the '
        f'repository\'s configs: {", ".join(available_configs())}.')
  path = os.path.abspath(path)
  root = os.path.dirname(os.path.dirname(path))
  if root not in sys.path:
    sys.path.insert(0, root)
  return path + sep + arg


_OPTIONAL_CONFIG = {'optional': False, 'given': True}


def config_given() -> bool:
  """Whether --config was on the command line (eval.py may go without it)."""
  return _OPTIONAL_CONFIG['given']


def _resolve_config_flag(argv):
  """argv with the value of `--config` resolved by `resolve_config_path`; where --config is
  optional and absent, the base config stands in so that overrides still parse."""
  out = list(argv)
  given = any(a == '--config' or a.startswith('--config=') for a in out)
  _OPTIONAL_CONFIG['given'] = given
  if not given and _OPTIONAL_CONFIG['optional']:
    out.insert(1, '--config=' + os.path.join(REPO_CONFIGS, 'default.py'))
  for i, arg in enumerate(out):
    if arg.startswith('--config='):
      out[i] = '--config=' + resolve_config_path(arg[len('--config='):])
    elif arg == '--config' and i + 1 < len(out):
      out[i + 1] = resolve_config_path(out[i + 1])
  return out


HELP_FLAGS = ('--help', '-h', '-?', '--helpshort', '--helpfull')
OVERRIDES_HELP = """
Config overrides (after the flags above):
  --config.<key>=<value>   sets any key of the config, e.g. --config.train.num_steps=500
  --config=FILE:ARG        a config argument: :smoke (a seconds-long run) and key=value items,
                           e.g. configs/triangle_toy2d.py:smoke,model.width=32
  --print_config           prints every key of the resolved config with its value and exits
Keys: egm/config/defaults.py and each method's config_section(); docs/options.md."""


def print_help_and_exit(argv, flag_values=flags.FLAGS) -> None:
  """With a help flag in `argv`: prints the program's flags and the config overrides, exits 0."""
  if not any(a in HELP_FLAGS for a in argv[1:]):
    return
  main = sys.modules['__main__']
  print((main.__doc__ or '').strip() + '\n', flush=True)
  print(flag_values.main_module_help(), flush=True)
  print(OVERRIDES_HELP, flush=True)
  sys.exit(0)


def parse_flags(argv):
  """absl flag parser for `app.run`: a help flag prints the flags and the overrides and exits
  0; a bad flag, config file or override prints one paragraph and exits 2."""
  print_help_and_exit(argv)
  try:
    return parse(argv)
  except EgmError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


def parse(argv, flag_values=flags.FLAGS):
  """Parses `argv` into `flag_values`; a bad flag, config file or override is an EgmError."""
  try:
    return flag_values(_resolve_config_flag(argv))
  except EgmError:
    raise
  except SyntaxError as e:
    raise EgmError(f'The config file {e.filename} is not valid Python: {e.msg} (line {e.lineno}). '
                   'Fix the file, or start from one of the repository\'s configs/*.py.') from e
  except flags.Error as e:
    detail = str(e)
    if 'Traceback' in detail:  # a config file that raised: keep its final line
      detail = [line for line in detail.splitlines() if line.strip()][-1]
    raise EgmError(f'{detail.rstrip(".")}. Run with --helpshort to see the flags.') from e
  except (AttributeError, KeyError) as e:
    detail = str(e).strip('\'"').replace('\\n', ' ').replace('\\', '')
    if "attribute 'get_config" in detail:
      raise EgmError('The config file defines no get_config(arg=None) function returning the '
                     'ConfigDict; see configs/triangle_digits.py for the form.') from e
    raise EgmError(f'Unknown config key in a --config.<key>=<value> override: '
                   f'{_unknown_key(detail)} Print every key of a config with its value: python '
                   'train.py --config=FILE --print_config (the keys are declared in '
                   'egm/config/defaults.py and in each method\'s config_section()).') from e
  except (TypeError, ValueError) as e:
    raise EgmError(f'Bad --config argument: {e}. Pass --config=configs/NAME.py, optionally with '
                   '":smoke" for a seconds-long run, and overrides as --config.<key>=<value>.'
                   ) from e


def _unknown_key(detail: str) -> str:
  """ml_collections' "'k' Did you mean "key" instead of "k"?" as "'k'. Did you mean 'key'?"."""
  match = re.match(r"\s*'?([^'\s]+)'?\s*Did you mean \"([^\"]+)\" instead of", detail)
  if match:
    return f"'{match.group(1)}'. Did you mean '{match.group(2)}'?"
  return detail.rstrip('.') + '.'


def define_run_flags(config_help: str, config_required: bool = True,
                     flag_values=flags.FLAGS):
  """The flags of train.py and eval.py; returns the (config, workdir) flag holders."""
  from ml_collections import config_flags
  config = config_flags.DEFINE_config_file('config', None, config_help, lock_config=True,
                                           flag_values=flag_values)
  workdir = flags.DEFINE_string('workdir', None, 'The run directory: checkpoints, logs, samples.',
                                flag_values=flag_values)
  flags.DEFINE_bool('print_config', False, 'Print the resolved config (every key with its '
                    'value) and exit (no --workdir needed).', flag_values=flag_values)
  if config_required:
    flags.mark_flags_as_required(['config'], flag_values=flag_values)
  _OPTIONAL_CONFIG['optional'] = not config_required
  distributed.define_flags(flag_values)
  return config, workdir


def override_values() -> dict:
  """The `--config.<key>=<value>` overrides given on the command line, flat: {key: value}."""
  from ml_collections import config_flags
  return dict(config_flags.get_override_values(flags.FLAGS['config']))


def print_config_and_exit(config) -> None:
  """With --print_config: prints `config` (every key and value) and exits 0."""
  if flags.FLAGS.print_config:
    print(config, flush=True)
    sys.exit(0)


def check_workdir(workdir: str | None) -> None:
  """Raises EgmError when `workdir` is missing, empty or exists but is not a directory."""
  if not workdir:
    raise EgmError('--workdir is missing. Pass the run directory, e.g. --workdir=runs/digits.')
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise EgmError(f'--workdir={workdir} is a file, not a directory. Pass a new or existing '
                   'run directory.')


def check_trained_workdir(workdir: str | None) -> None:
  """What eval.py checks first: `workdir` names an existing run directory."""
  check_workdir(workdir)
  if not os.path.exists(workdir):
    raise EgmError(f'--workdir={workdir} does not exist: train a run there first (python '
                   f'train.py --config <config> --workdir {workdir}), or point --workdir at '
                   'a run directory.')


def check_run(config, workdir: str | None) -> None:
  """What train.py checks before it reads data: no value of `config` is impossible
  (egm/config/checks.py), and `workdir` is a directory it can write to, or one it can create
  (it is created once the data has loaded, so a run refused before leaves none behind)."""
  checks.check(config)
  check_workdir(workdir)
  existing = os.path.abspath(workdir)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  try:
    if not os.path.isdir(existing):
      raise NotADirectoryError(20, 'Not a directory', existing)
    with tempfile.TemporaryFile(dir=existing):
      pass
  except OSError as e:
    raise EgmError(f'--workdir={workdir} cannot be written: {e.strerror} ({e.filename}). Pass '
                   'a directory you can create and write to.') from e


def run(main):
  """`app.run(main)` where an EgmError raised by `main` prints its message and exits 2, and a
  collective that fails because another process died prints that and exits 1 at once.
  `EGM_HOST_MALLOC` (`host_memory`) is applied before `main`, i.e. before JAX runs anything
  (under the default the process may restart itself once, with glibc's huge-page tunable)."""
  def guarded(argv):
    if not flags.FLAGS['verbosity'].present:
      logging.set_verbosity(logging.WARNING)  # library INFO logs (Orbax) drown the progress lines
    try:
      host_memory.apply_choice()
      return main(argv)
    except EgmError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
    except (RuntimeError, ValueError) as e:
      if not distributed.lost_a_process(e):
        raise
      distributed.stop_after_lost_process(e)
  app.run(guarded, flags_parser=parse_flags)
