"""The config argument after a config file's path: `configs/x.py:smoke,model.width=32,z_dim=16`.

Comma-separated items: `smoke` shrinks the run to seconds (`defaults.smoke`);
`key=value` sets a key, written in full (`model.width`) or by its last part alone when
that names exactly one key (`width`). Values are parsed as the key's current type.
"""
import ml_collections

from egm.config import defaults
from egm.errors import EgmError


def leaf_keys(config: ml_collections.ConfigDict, prefix: str = '') -> list[str]:
  """Every dotted leaf key of `config`, e.g. ['data.source', ..., 'seed']."""
  keys = []
  for name, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      keys.extend(leaf_keys(value, f'{prefix}{name}.'))
    else:
      keys.append(f'{prefix}{name}')
  return sorted(keys)


def resolve_key(config, key: str) -> str:
  """The dotted key `key` names: itself if it is one, else the one key ending in `.key`."""
  keys = leaf_keys(config)
  if key in keys:
    return key
  matches = [k for k in keys if k.endswith('.' + key)]
  if len(matches) == 1:
    return matches[0]
  if matches:
    raise EgmError(f'The config argument key {key!r} is ambiguous: it could be '
                   f'{", ".join(matches)}. Write the full key.')
  raise EgmError(f'The config argument names the unknown key {key!r}. Valid keys: '
                 f'{", ".join(keys)}.')


def _parse(text: str, like):
  """`text` as the type of `like` (bool, int, float or str)."""
  try:
    if isinstance(like, bool):
      if text.lower() not in ('true', 'false', '1', '0'):
        raise ValueError(text)
      return text.lower() in ('true', '1')
    if isinstance(like, int):
      return int(text)
    if isinstance(like, float):
      return float(text)
  except ValueError as e:
    raise EgmError(f'The config argument value {text!r} is not a {type(like).__name__}, '
                   'the type of that key.') from e
  return text


def apply(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies the config argument `arg` (None or '' leaves `config` as it is); returns it."""
  settings = []
  for item in filter(None, (part.strip() for part in (arg or '').split(','))):
    if item == 'smoke':
      defaults.smoke(config)
    elif '=' in item:
      settings.append(item.split('=', 1))
    else:
      raise EgmError(f'Unknown config argument {item!r}: use "smoke" or key=value items, '
                     'comma-separated (configs/X.py:smoke,model.width=32).')
  for key, text in settings:  # after `smoke`, so explicit values win
    path = resolve_key(config, key.strip())
    *parents, leaf = path.split('.')
    section = config
    for part in parents:
      section = section[part]
    like = section[leaf]
    if like is None:  # an unset key (a placeholder): parse as the type it was declared with
      like = section.get_ref(leaf).get_type()()
    section[leaf] = _parse(text.strip(), like)
  return config
