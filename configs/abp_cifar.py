"""Alternating back-propagation (`method=abp`) on CIFAR-10 (tfds), 32x32 RGB.

The triangle's CIFAR generator (z 100, width 64), σ 0.3, Adam β1 0.5 with lr 3e-4;
30 Langevin steps of δ 0.1 per update from each example's persistent latent.
Offline: --config.data.source=folder:../shared/data/cifar10_jpeg.tar.gz
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'abp'
  config.data.source = 'tfds:cifar10'
  config.model.sigma = 0.3
  config.train.batch_size = 100
  config.train.num_steps = 100_000
  return default.finish(config, arg)
