"""Divergence triangle on scikit-learn's 8x8 digits: real images, no download, minutes on a CPU."""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'triangle'
  config.data.source = 'sklearn:digits'
  config.data.image_size = 8
  config.data.channels = 1
  config.model.z_dim = 16
  config.model.width = 32
  config.train.batch_size = 100
  config.train.num_steps = 3_000
  config.train.log_every = 100
  config.train.checkpoint_every = 500
  config.train.sample_every = 500
  config.optim.decay_per_epoch = 1.0
  return default.finish(config, arg)
