"""Divergence triangle on 2-D toy data (default 8 Gaussians); MLP networks, minutes on a CPU.

Other shapes: --config.data.source=toy2d:rings (swissroll, moons, checkerboard, 2spirals, pinwheel).
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'triangle'
  config.data.source = 'toy2d:8gaussians'
  config.model.z_dim = 2
  config.model.width = 128
  config.model.mlp_depth = 3
  config.model.sigma = 0.1
  # The EBM is a critic of G's samples: a Gaussian reference energy, an E² penalty and a
  # weaker pull of G towards low energy keep exp(−E) a calibrated density (measured by
  # density_tv in a sweep over these three; see the closing note of issue 2).
  config.model.energy_reference_std = 2.0
  config.triangle.energy_l2 = 0.3
  config.triangle.energy_weight = 0.3
  config.optim.lr_energy = 3e-4
  config.optim.lr_generator = 1e-3
  config.optim.lr_encoder = 1e-3
  config.optim.decay_per_epoch = 1.0
  config.optim.grad_clip = 10.0
  config.train.batch_size = 256
  config.train.num_steps = 5_000
  config.train.log_every = 250
  config.train.checkpoint_every = 1_000
  config.train.sample_every = 1_000
  config.eval.num_samples = 5_000
  return default.finish(config, arg)
