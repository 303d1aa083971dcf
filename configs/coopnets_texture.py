"""CoopNets texture synthesis from one image: `texture:brick` (or grass, gravel, or a file path).

The exemplar (its shorter side resized to 128 px) is cut into random 32x32
crops; the fully convolutional descriptor and generator (`model.architecture =
texture`) learn from the crops and synthesise textures of any side divisible by
4 (`eval.synthesis_size`, 96 px here). Another texture:
--config.data.source=texture:grass or --config.data.source=texture:path/to/image.png

The scale matters: a crop must hold a few repeats of the texture's structure.
At 192 px scikit-image's bricks are about 15 x 48 px, longer than a 32 px crop,
and the synthesis keeps mortar segments but not the wall (filter-bank distance 0.333
after 747 updates); at 128 px (bricks about 10 x 32 px) it shows columns of bricks:
0.229 at update 382 (seed 0) and 0.219 / 0.210 / 0.233 at updates 300 / 400 / 431
(seed 1), against 0.196 for the exemplar's held-out quarter and 0.349 for grass.
Training longer drifts to finer lines (seed 0: 0.362 at 500, 0.346 at 851), so a run
stops at 400 updates (about 22 minutes on one CPU core) with a checkpoint every 100
(`--config.eval.checkpoint_step` evaluates an earlier one). Revisions are 30
descriptor steps of 0.04 with an L2 penalty on the energies (`coopnets.energy_l2`),
the settings of the best brick runs. Grass at 128 px: 0.085 after 381 updates
(held-out 0.100, brick 0.352).
"""
from configs import coopnets_cifar, default


def get_config(arg=None):
  config = coopnets_cifar.get_config()
  config.data.source = 'texture:brick'
  config.data.texture_size = 128
  config.data.image_size = 32
  config.data.channels = 1
  config.model.architecture = 'texture'
  config.model.z_dim = 8
  config.model.width = 32
  config.coopnets.n_steps = 30
  config.coopnets.step_size = 0.04
  config.coopnets.energy_l2 = 1e-3
  config.coopnets.clamp = True  # the measurements above clamp revisions to [-1, 1]
  config.train.batch_size = 32
  config.train.num_steps = 400
  config.train.log_every = 50
  config.train.checkpoint_every = 100
  config.train.sample_every = 100
  config.eval.synthesis_size = 96
  return default.finish(config, arg)
