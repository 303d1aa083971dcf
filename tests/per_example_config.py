"""A config for the `row_means` test method (tests/platform_methods.py) on 2-D points."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import platform_methods  # noqa: E402,F401  (registers row_means)
from configs import default  # noqa: E402


def get_config(arg=None):
  config = default.get_config()
  config.method = 'row_means'
  config.data.source = 'toy2d:8gaussians'
  config.data.max_examples = 40
  config.data.dequantize = 0.1
  config.train.batch_size = 8
  config.train.num_steps = 12
  config.train.log_every = 2
  config.train.checkpoint_every = 6
  config.train.sample_every = 1000
  return default.finish(config, arg)
