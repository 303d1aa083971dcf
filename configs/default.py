"""Defaults shared by every config; variants import `get_config` and patch it.

The keys and their defaults live in `egm/config_defaults.py`; here are the patches
that configs share (`toy2d`, the `:smoke` argument).
"""
from egm import config_defaults


def get_config(arg=None):
  """Returns the base config (divergence triangle on CIFAR-10 via tfds); arg as in `finish`."""
  return finish(config_defaults.base_config(), arg)


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
  """Applies the config argument: None or '' as is, 'smoke' shrinks to a seconds-long run."""
  if arg in (None, ''):
    return config
  if arg == 'smoke':
    return smoke(config)
  raise ValueError(f'unknown config argument {arg!r}; the only one is "smoke" (configs/X.py:smoke)')


def smoke(config):
  """Shrinks `config` in place to a seconds-long run (the `:smoke` argument)."""
  config.model.z_dim = min(config.model.z_dim, 8)
  config.model.width = min(config.model.width, 8)
  config.train.batch_size = 16
  config.train.num_steps = 6
  config.train.log_every = 2
  config.train.checkpoint_every = 3
  config.train.sample_every = 3
  config.eval.batch_size = 32
  config.eval.num_samples = 16
  config.eval.max_test_examples = 64
  config.eval.grid_size = 40
  config.eval.num_tv_samples = 4_000
  config.data.max_examples = 256
  config.ebm.n_steps = min(config.ebm.n_steps, 5)
  config.ebm.buffer_size = min(config.ebm.buffer_size, 64)
  config.coopnets.n_steps = min(config.coopnets.n_steps, 3)
  config.coopnets.infer_steps = min(config.coopnets.infer_steps, 2)
  config.coopnets.completion_infer_steps = min(config.coopnets.completion_infer_steps, 3)
  config.coopnets.completion_samples = min(config.coopnets.completion_samples, 2)
  config.eval.synthesis_size = min(config.eval.synthesis_size, 32)
  config.eval.texture_syntheses = min(config.eval.texture_syntheses, 2)
  config.eval.completion_examples = min(config.eval.completion_examples, 32)
  config.eval.long_run_factor = min(config.eval.long_run_factor, 2)
  config.eval.num_fid_samples = 64
  config.eval.max_neighbour_examples = 256
  return config
