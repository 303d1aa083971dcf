"""Flag parsing for the entry points: user mistakes become one paragraph, not a traceback.

`--config` takes a config file (`configs/triangle_cifar.py`, from any directory) or the
name of one of the repository's configs (`triangle_cifar`), optionally followed by a config
argument (`:smoke`, `:smoke,model.width=32`; see egm/arguments.py). Configs are not
installed with the package: they live in the repository's `configs/` folder, found next to
the `egm` package of a source checkout (`pip install -e .`).
"""
import os
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


def parse_flags(argv):
  """absl flag parser for `app.run`: a bad flag, config file or override prints one paragraph
  and exits 2."""
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
    raise EgmError(f'Unknown config key in a --config.<key>=<value> override: {detail}. Print '
                   'every key of a config with its value: python train.py --config=FILE '
                   '--print_config (the keys are declared in egm/defaults.py and in each '
                   'method\'s config_section()).') from e
  except (TypeError, ValueError) as e:
    raise EgmError(f'Bad --config argument: {e}. Pass --config=configs/NAME.py, optionally with '
                   '":smoke" for a seconds-long run, and overrides as --config.<key>=<value>.'
                   ) from e


def define_run_flags(config_help: str, config_required: bool = True,
                     flag_values=flags.FLAGS):
  """The flags of train.py and eval.py; returns the (config, workdir) flag holders."""
  from ml_collections import config_flags
  config = config_flags.DEFINE_config_file('config', None, config_help, lock_config=True,
                                           flag_values=flag_values)
  workdir = flags.DEFINE_string('workdir', None, 'The run directory: checkpoints, logs, samples.',
                                flag_values=flag_values)
  flags.DEFINE_bool('print_config', False, 'Print the resolved config (every key with its '
                    'value) and exit.', flag_values=flag_values)
  flags.mark_flags_as_required(['config', 'workdir'] if config_required else ['workdir'],
                               flag_values=flag_values)
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


def check_workdir(workdir: str) -> None:
  """Raises EgmError when `workdir` is empty or exists but is not a directory."""
  if not workdir:
    raise EgmError('--workdir is empty. Pass the run directory, e.g. --workdir=runs/digits.')
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise EgmError(f'--workdir={workdir} is a file, not a directory. Pass a new or existing '
                   'run directory.')


def check_run(config, workdir: str) -> None:
  """What train.py checks before it reads data: `workdir` is, or now becomes, a directory it
  can write to, and no value of `config` is impossible (egm/checks.py)."""
  check_workdir(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.TemporaryFile(dir=workdir):
      pass
  except OSError as e:
    raise EgmError(f'--workdir={workdir} cannot be written: {e.strerror} ({e.filename}). Pass '
                   'a directory you can create and write to.') from e
  checks.check(config)


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
