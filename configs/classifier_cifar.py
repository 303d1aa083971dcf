"""ConvNet classifier on the CIFAR-10 JPEG archive (`cifar10_jpeg`): `fid_cifar10_jpeg_classifier`.

Reads ../shared/data/cifar10_jpeg.tar.gz (decoded once, then cached in ~/.cache/egm); JPEG
quality 75, so scores in its feature space are named cifar10_jpeg, not cifar10.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'classifier'
  config.data.source = 'folder:../shared/data/cifar10_jpeg.tar.gz'
  config.data.image_size = 32
  config.data.channels = 3
  config.model.width = 32
  config.classifier.feature_name = 'cifar10_jpeg_classifier'
  config.classifier.random_flip = True
  config.optim.b1 = 0.9
  config.optim.decay_per_epoch = 0.95
  config.optim.grad_clip = 0.0
  config.train.batch_size = 128
  config.train.num_steps = 20_000
  config.train.log_every = 100
  config.train.checkpoint_every = 500
  config.eval.metrics = 'test_accuracy,loss_curves'
  return default.finish(config, arg)
