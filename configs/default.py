"""Defaults shared by every config; variants import `get_config` and patch it.

The keys and their defaults live in `egm/config/defaults.py` and in each method's
`config_section()`; here is the patch 2-D configs share (`toy2d`), and `finish`, which
applies the config argument (`:smoke`, `:model.width=32`, ...).
"""
from egm.config import arguments, defaults


def get_config(arg=None):
  """Returns the base config (divergence triangle on CIFAR-10 via tfds); arg as in `finish`."""
  return finish(defaults.base_config(), arg)


def toy2d(config, name='8gaussians'):
  """Patches `config` for 2-D toy data: MLP nets, no lr decay, batch 256, 5k steps, 2-D eval."""
  config.data.source = f'toy2d:{name}'
  config.model.width = 128
  config.model.mlp_depth = 3
  config.optim.decay_per_epoch = 1.0
  config.optim.grad_clip = 10.0
  config.train.batch_size = 256
  config.train.num_steps = 5_000
  config.train.log_every = 250
  config.train.checkpoint_every = 1_000
  config.train.sample_every = 1_000
  config.eval.num_samples = 5_000
  return config


def finish(config, arg):
  """Applies the config argument (`smoke`, `key=value`, ...; see egm/config/arguments.py)."""
  return arguments.apply(config, arg)
