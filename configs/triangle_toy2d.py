"""Divergence triangle on 2-D toy data (default 8 Gaussians); MLP networks, minutes on a CPU.

Other shapes: --config.data.source=toy2d:rings (swissroll, moons, checkerboard, 2spirals, pinwheel).
"""
from configs import default


def get_config(arg=None):
  config = default.toy2d(default.get_config())
  config.method = 'triangle'
  config.model.z_dim = 2
  config.model.sigma = 0.1
  # The EBM is a critic of G's samples: a Gaussian reference energy, an E² penalty and a
  # weaker pull of G towards low energy keep exp(−E) a calibrated density (chosen by
  # density_tv in a sweep over these three; see the closing note of issue 2).
  config.model.energy_reference_std = 2.0
  config.triangle.energy_l2 = 0.3
  config.triangle.energy_weight = 0.3
  config.triangle.optim.energy.lr = 3e-4
  config.triangle.optim.generator.lr = 1e-3
  config.triangle.optim.encoder.lr = 1e-3
  config.vae.optim.generator.lr = config.vae.optim.encoder.lr = 1e-3  # the VAE baseline's
  return default.finish(config, arg)
