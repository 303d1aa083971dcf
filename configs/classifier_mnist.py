"""ConvNet classifier on MNIST: the feature network of `fid_mnist_classifier` etc.

Only the MNIST test set is kept offline (../shared/data/t10k-*, 10,000 digits); the idx:
source then serves it as both splits, so `data.holdout` makes a seeded uniform sample of
2,000 digits the test split and the other 8,000 the training split.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'classifier'
  config.data.source = 'idx:../shared/data'
  config.data.holdout = 2_000
  config.data.image_size = 28
  config.data.channels = 1
  config.model.width = 32
  config.classifier.feature_name = 'mnist_classifier'
  config.optim.b1 = 0.9
  config.optim.decay_per_epoch = 0.95
  config.optim.grad_clip = 0.0
  config.train.batch_size = 128
  config.train.num_steps = 2_000
  config.train.log_every = 100
  config.train.checkpoint_every = 500
  config.eval.metrics = 'test_accuracy,loss_curves'
  return default.finish(config, arg)
