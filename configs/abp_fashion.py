"""Alternating back-propagation (`method=abp`) on Fashion-MNIST, 28x28 grey.

The generator of `triangle_fashion.py` (z 64, width 32), σ 0.3; 30 Langevin steps of δ 0.1
per update, warm-started from each example's latent of its previous visit; 300 steps from
the prior at test time. The real data offline: `python -m egm.data.fashion_mnist
data/fashion_mnist`, then --config.data.source=idx:data/fashion_mnist/usr/share/datasets/fashion-mnist
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'abp'
  config.data.source = 'tfds:fashion_mnist'
  config.data.image_size = 28
  config.data.channels = 1
  config.model.z_dim = 64
  config.model.width = 32
  config.model.sigma = 0.3
  config.train.batch_size = 100
  config.train.num_steps = 30_000
  config.train.checkpoint_every = 1_000
  config.train.sample_every = 1_000
  return default.finish(config, arg)
