"""CoopNets texture synthesis from one image: `texture:brick` (or grass, gravel, or a file path).

The exemplar (its shorter side resized to 192 px) is cut into random 32x32
crops; the fully convolutional descriptor and generator (`model.architecture =
texture`) learn from the crops and synthesise textures of any side divisible by
4 (`eval.synthesis_size`, 96 px here). Another texture:
--config.data.source=texture:grass or --config.data.source=texture:path/to/image.png
"""
from configs import coopnets_cifar, default


def get_config(arg=None):
  config = coopnets_cifar.get_config()
  config.data.source = 'texture:brick'
  config.data.texture_size = 192
  config.data.image_size = 32
  config.data.channels = 1
  config.model.architecture = 'texture'
  config.model.z_dim = 8
  config.model.width = 32
  config.train.batch_size = 32
  config.train.num_steps = 5_000
  config.train.log_every = 100
  config.train.checkpoint_every = 500
  config.train.sample_every = 500
  config.eval.synthesis_size = 96
  return default.finish(config, arg)
