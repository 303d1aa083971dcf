"""CoopNets on CIFAR-10 32x32 (reference settings of DESIGN.md §1).

The descriptor is the 32x32 ConvNet EBM with the Gaussian reference density
N(0, σ²), σ = 0.016; descriptor Langevin y ← y − δ²/2·∇E + δ·ε with δ = 0.002,
15 steps; the generator regresses onto the revised images with σ_g = 0.3;
Adam β1 = 0.5. Offline, train on the JPEG archive:
--config.data.source=folder:../shared/data/cifar10_jpeg.tar.gz
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'coopnets'
  config.data.source = 'tfds:cifar10'
  config.model.z_dim = 100
  config.model.energy_reference_std = 0.016
  config.model.sigma = 0.3
  config.optim.lr_energy = 1e-3
  config.optim.lr_generator = 1e-4
  config.optim.b1 = 0.5
  config.coopnets.n_steps = 15
  config.coopnets.step_size = 0.002
  config.train.batch_size = 100
  config.train.num_steps = 50_000
  config.eval.long_run_factor = 0
  return default.finish(config, arg)
