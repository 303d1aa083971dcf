"""Divergence triangle on CIFAR-10 (tfds), the reference settings of Han et al. 2019.

Offline: --config.data.source=folder:../shared/data/cifar10_jpeg.tar.gz
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'triangle'
  config.data.source = 'tfds:cifar10'
  config.train.batch_size = 100
  config.train.num_steps = 100_000
  return default.finish(config, arg)
