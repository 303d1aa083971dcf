"""Impossible config values, refused before any data is read or any program compiled.

Each rule names a key, what its value must be and a test of it; `check(config)` raises one
EgmError that lists every broken rule with the key's default, so a run that would divide by
zero, train with a negative learning rate or compile for a minute before failing stops at once.
"""
from typing import Callable, NamedTuple

from egm.data import masks
from egm.errors import EgmError
from egm.methods import optim


class Rule(NamedTuple):
  """`key` (dotted) must satisfy `ok(value)`, described as `requirement`."""
  key: str
  requirement: str
  ok: Callable[[object], bool]


def _at_least(low):
  return lambda value: value >= low


def _positive(value):
  return value > 0


RULES = (
    Rule('seed', 'at least 0', _at_least(0)),
    Rule('train.batch_size', 'at least 1', _at_least(1)),
    Rule('train.num_steps', 'at least 0 (0 writes the initial state only)', _at_least(0)),
    Rule('train.log_every', 'at least 1', _at_least(1)),
    Rule('train.log_seconds', 'positive', _positive),
    Rule('train.checkpoint_every', 'at least 1', _at_least(1)),
    Rule('train.sample_every', 'at least 1', _at_least(1)),
    Rule('train.keep_checkpoints', 'at least 0 (0 keeps every checkpoint)', _at_least(0)),
    Rule('train.max_minutes', 'at least 0 (0: no limit)', _at_least(0)),
    Rule('model.width', 'at least 1', _at_least(1)),
    Rule('model.z_dim', 'at least 1', _at_least(1)),
    Rule('model.mlp_depth', 'at least 0', _at_least(0)),
    Rule('model.sigma', 'positive (the observation noise of G divides the likelihood)',
         _positive),
    Rule('model.energy_reference_std', 'at least 0 (0: no reference energy)', _at_least(0)),
    Rule('model.energy_dtype', 'float32 or bfloat16', lambda v: v in ('float32', 'bfloat16')),
    Rule('data.dequantize', 'at least 0 (a noise std)', _at_least(0)),
    Rule('data.prefetch', 'at least 0', _at_least(0)),
    Rule('data.max_examples', 'at least 0 (0 keeps every example)', _at_least(0)),
    Rule('data.holdout', 'at least 0', _at_least(0)),
    Rule('data.texture_size', 'at least 0 (0: the image as it is)', _at_least(0)),
    Rule('eval.batch_size', 'at least 1', _at_least(1)),
    Rule('eval.num_samples', 'at least 1', _at_least(1)),
)


def _value(config, key: str):
  node = config
  for part in key.split('.'):
    node = node[part]
  return node


def problems(config) -> list[str]:
  """One sentence per broken rule (and per conflict between keys) of `config`."""
  from egm.config import defaults
  base = defaults.base_config()
  found = [f'config.{rule.key} is {_value(config, rule.key)!r}; it must be {rule.requirement} '
           f'(default {_value(base, rule.key)!r}).'
           for rule in RULES if not rule.ok(_value(config, rule.key))]
  found += optim.problems(config)
  try:
    size = max(1, config.data.image_size)
    masks.parse_mask(config.data.mask, size, size)
  except EgmError as e:
    found.append(str(e))
  examples, batch = config.data.max_examples, config.train.batch_size
  if 0 < examples < batch:
    found.append(f'config.data.max_examples is {examples}, fewer than one batch '
                 f'(config.train.batch_size={batch}); raise it or lower the batch size.')
  return found


def check(config) -> None:
  """Raises EgmError listing every impossible value of `config`."""
  found = problems(config)
  if found:
    raise EgmError(' '.join(found) + ' Fix them with --config.<key>=<value>.')
