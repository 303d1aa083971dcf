"""CoopNets on Fashion-MNIST, 28x28 grey (the CIFAR settings with narrower nets).

The real data offline: `python -m egm.data.fashion_mnist data/fashion_mnist`, then
--config.data.source=idx:data/fashion_mnist/usr/share/datasets/fashion-mnist
"""
from configs import coopnets_cifar, default


def get_config(arg=None):
  config = coopnets_cifar.get_config()
  config.data.source = 'tfds:fashion_mnist'
  config.data.image_size = 28
  config.data.channels = 1
  config.model.z_dim = 64
  config.model.width = 32
  config.coopnets.clamp = True  # revisions clamped to [-1, 1]
  config.train.num_steps = 30_000
  config.train.checkpoint_every = 1_000
  config.train.sample_every = 500
  return default.finish(config, arg)
