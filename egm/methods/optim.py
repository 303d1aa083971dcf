"""Per-network optimiser settings: owned by each method, over shared defaults.

A method's config section holds an `optim` subsection with one entry per network it trains
(`network_settings`), e.g. `config.triangle.optim.energy.lr`. Each entry has every key of
`KEYS`; a key left unset (None) takes the shared value of `config.optim`, so

    --config.optim.b1=0.9                      # every network of the run
    --config.triangle.optim.energy.lr=2e-4     # one network

`settings(method_section, shared, name)` resolves one network's values and `make_optimizer`
builds its optax transform: Adam(b1, b2) at lr, decayed by `decay_per_epoch` per epoch (a
staircase; 1 keeps it constant), with L2 weight decay added to the gradient before Adam
(`weight_decay`, as `torch.optim.Adam(weight_decay=...)`) and a global-norm clip
(`grad_clip`, 0: none) first.
"""
import dataclasses

import ml_collections
import optax
from ml_collections import config_dict

from egm.errors import EgmError

SECTION = 'optim'
# key -> (requirement, test) for every per-network and shared setting.
KEYS = {
    'lr': ('at least 0', lambda v: v >= 0),
    'b1': ('in [0, 1)', lambda v: 0 <= v < 1),
    'b2': ('in [0, 1)', lambda v: 0 <= v < 1),
    'weight_decay': ('at least 0 (0: none)', lambda v: v >= 0),
    'grad_clip': ('at least 0 (0: no clipping)', lambda v: v >= 0),
    'decay_per_epoch': ('positive (1: no decay)', lambda v: v > 0),
}


def shared_defaults() -> ml_collections.ConfigDict:
  """`config.optim`: the values a network's unset keys take."""
  return ml_collections.ConfigDict({
      'lr': 1e-4, 'b1': 0.5, 'b2': 0.999, 'weight_decay': 0.0, 'grad_clip': 100.0,
      'decay_per_epoch': 0.998})


def network_settings(**networks: dict) -> ml_collections.ConfigDict:
  """A method's `optim` subsection: per network name, its own defaults (a dict of `KEYS`);
  the keys it leaves out are unset and take the shared `config.optim` values."""
  section = ml_collections.ConfigDict()
  for name, own in networks.items():
    unknown = sorted(set(own) - set(KEYS))
    if unknown:
      raise EgmError(f'Unknown optimiser setting(s) {unknown} for network {name!r}; the '
                     f'settings are {sorted(KEYS)} (egm/methods/optim.py).')
    section[name] = ml_collections.ConfigDict(
        {key: float(own[key]) if key in own else config_dict.placeholder(float) for key in KEYS})
  return section


@dataclasses.dataclass(frozen=True)
class Settings:
  """One network's resolved optimiser settings (see the module docstring)."""
  lr: float
  b1: float
  b2: float
  weight_decay: float
  grad_clip: float
  decay_per_epoch: float


def settings(method_section, shared, name: str) -> Settings:
  """Network `name`'s settings: its entry in `method_section.optim` over `shared`."""
  networks = method_section.get(SECTION) or {}
  if name not in networks:
    raise EgmError(f'The method has no optimiser settings for a network {name!r}: declare it '
                   f'in its config_section() with optim.network_settings({name}=...).')
  own = networks[name]
  return Settings(**{key: shared[key] if own[key] is None else own[key] for key in KEYS})


def make_optimizer(s: Settings, steps_per_epoch: int) -> optax.GradientTransformation:
  """The optax transform of `s` (module docstring) for an epoch of `steps_per_epoch` updates."""
  lr = s.lr
  if s.decay_per_epoch != 1:
    lr = optax.exponential_decay(s.lr, transition_steps=max(1, steps_per_epoch),
                                 decay_rate=s.decay_per_epoch, staircase=True)
  adam = optax.adam(lr, b1=s.b1, b2=s.b2)
  parts = ([optax.clip_by_global_norm(s.grad_clip)] if s.grad_clip > 0 else []) + (
      [optax.add_decayed_weights(s.weight_decay)] if s.weight_decay > 0 else [])
  return optax.chain(*parts, adam) if parts else adam


def learning_rate_keys(config) -> tuple[str, ...]:
  """The dotted lr keys of the networks of `config.method`, e.g. 'triangle.optim.energy.lr'."""
  section = config.get(config.method) or {}
  return tuple(f'{config.method}.{SECTION}.{name}.lr' for name in sorted(section.get(SECTION, {})))


def value(config, dotted: str):
  """The value of the dotted key `dotted` of `config`; an unset per-network optimiser key
  (`<method>.optim.<network>.<key>`) gives the shared `optim.<key>` it takes."""
  node = config
  for part in dotted.split('.'):
    node = node[part]
  parts = dotted.split('.')
  if node is None and len(parts) == 4 and parts[1] == SECTION and parts[3] in KEYS:
    return config[SECTION][parts[3]]
  return node


def set_value(config, dotted: str, new) -> None:
  """Sets the dotted key `dotted` of `config` to `new`."""
  *parents, leaf = dotted.split('.')
  node = config
  for part in parents:
    node = node[part]
  node[leaf] = new


def problems(config) -> list[str]:
  """One sentence per shared or per-network optimiser value of the run's method that cannot
  work, naming its key."""
  found = [f'config.{SECTION}.{key} is {config[SECTION][key]!r}; it must be {requirement}.'
           for key, (requirement, ok) in KEYS.items() if not ok(config[SECTION][key])]
  section = config.get(config.method) or {}
  for name, own in sorted(section.get(SECTION, {}).items()):
    for key, (requirement, ok) in KEYS.items():
      if own[key] is not None and not ok(own[key]):
        found.append(f'config.{config.method}.{SECTION}.{name}.{key} is {own[key]!r}; it must '
                     f'be {requirement}.')
  return found
