"""Short-run MCMC EBM on Fashion-MNIST, 28x28 grey (the CIFAR settings with a narrower ConvNet).

The real data offline: `python -m egm.data.fashion_mnist data/fashion_mnist`, then
--config.data.source=idx:data/fashion_mnist/usr/share/datasets/fashion-mnist
"""
from configs import default, ebm_cifar


def get_config(arg=None):
  config = ebm_cifar.get_config()
  config.data.source = 'tfds:fashion_mnist'
  config.data.image_size = 28
  config.data.channels = 1
  config.model.width = 32
  config.ebm.n_steps = 60
  config.ebm.clamp = True  # chains clamped to [-1, 1]
  return default.finish(config, arg)
