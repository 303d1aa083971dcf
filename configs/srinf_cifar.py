"""Short-run inference with a learned step (`method=srinf`) on CIFAR-10 (tfds), 32x32 RGB.

The reference's CelebA-32 settings (arXiv 1912.01909 and its public code): five latent
layers of 64, 64, 64, 96, 128 dims (top first; they enter at 2, 4, 8, 16 and 32 px), GELU
without BatchNorm, σ 0.15, 25 Langevin steps from the prior starting at δ 0.05 (learned
from there), Adam 8e-5 with β1 0.5, batch 100. Offline:
--config.data.source=folder:../shared/data/cifar10_jpeg.tar.gz (JPEG copies: name the
results cifar10_jpeg).
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'srinf'
  config.data.source = 'tfds:cifar10'
  config.model.width = 64
  config.model.sigma = 0.15
  config.srinf.latent_dims = '64,64,64,96,128'
  config.srinf.n_steps = 25
  config.srinf.step_size = 0.05
  config.srinf.optim.generator.lr = 8e-5
  config.train.batch_size = 100
  config.train.num_steps = 100_000
  return default.finish(config, arg)
