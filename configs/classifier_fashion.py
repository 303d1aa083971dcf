"""ConvNet classifier on Fashion-MNIST: the feature network of `fid_fashion_classifier` etc.

The real data offline: `python -m egm.data.fashion_mnist data/fashion_mnist`, then
--config.data.source=idx:data/fashion_mnist/usr/share/datasets/fashion-mnist
Generative runs use it with --config.eval.feature_workdir=<this run's workdir>.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'classifier'
  config.data.source = 'tfds:fashion_mnist'
  config.data.image_size = 28
  config.data.channels = 1
  config.model.width = 32
  config.classifier.feature_name = 'fashion_classifier'
  config.optim.b1 = 0.9
  config.optim.decay_per_epoch = 0.9
  config.optim.grad_clip = 0.0
  config.train.batch_size = 128
  config.train.num_steps = 5_000
  config.train.log_every = 100
  config.train.checkpoint_every = 500
  config.eval.metrics = 'test_accuracy,loss_curves'
  return default.finish(config, arg)
