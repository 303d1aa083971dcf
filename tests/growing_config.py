"""A config for `growing_energy` (tests/growing_method.py) on the 8x8 digits: 6 updates at 4x4,
then the grown network at 8x8 with a 4-update fade-in, a checkpoint every 2 updates."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import growing_method  # noqa: E402,F401  (registers growing_energy)
from configs import default  # noqa: E402


def get_config(arg=None):
  config = default.get_config()
  config.method = 'growing_energy'
  config.data.source = 'sklearn:digits'
  config.data.image_size = 8
  config.data.channels = 1
  config.data.max_examples = 256
  config.train.batch_size = 16
  config.train.num_steps = 14
  config.train.log_every = 1
  config.train.checkpoint_every = 2
  config.train.sample_every = 1000
  config.eval.metrics = 'samples,neighbours'
  config.eval.num_samples = 16
  config.eval.max_neighbour_examples = 64
  return default.finish(config, arg)
