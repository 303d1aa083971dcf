"""Short-run MCMC EBM on CIFAR-10 (Nijkamp et al. 2019): the 32x32 ConvNet, K=100 steps from noise.

x <- x - dE/dx + 0.01·eps (step 1, noise 0.01: a cold, non-convergent sampler whose K-step samples
look like data), Adam 1e-4, batch 64, data noise 0.03. As in the reference, chains are not clamped to
[-1, 1] (`ebm.clamp`; the Fashion-MNIST config clamps). The
MH long-run diagnostic samples exp(−E/T) at the training temperature T = 0.01²/2 = 5e-5 with a step
adapted to a mean acceptance of 0.57 (a fixed step's MALA acceptance falls with the dimension,
here 3072). Offline:
--config.data.source=folder:../shared/data/cifar10_jpeg.tar.gz
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'ebm'
  config.data.source = 'tfds:cifar10'
  config.model.width = 64
  config.ebm.optim.energy.lr = 1e-4
  config.optim.b1 = 0.9
  config.optim.decay_per_epoch = 1.0
  config.optim.grad_clip = 0.0
  config.ebm.n_steps = 100
  config.ebm.step_size = 1.0
  config.ebm.noise_scale = 0.01
  config.ebm.data_noise = 0.03
  config.ebm.clamp = False
  config.ebm.mh_target_acceptance = 0.57
  config.train.batch_size = 64
  config.train.num_steps = 100_000
  config.eval.long_run_factor = 5  # 500-step long-run chains
  return default.finish(config, arg)
