"""Short-run MCMC EBM on 2-D toy data (default 8 Gaussians): MLP energy, chains from uniform noise."""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'ebm'
  config.data.source = 'toy2d:8gaussians'
  config.model.width = 128
  config.model.mlp_depth = 3
  config.optim.lr_energy = 1e-3
  config.optim.decay_per_epoch = 1.0
  config.optim.grad_clip = 10.0
  # Temperature noise²/(2·step) = 1: exp(−E) itself is the density the chains sample.
  config.ebm.n_steps = 60
  config.ebm.step_size = 0.02
  config.ebm.noise_scale = 0.2
  config.ebm.mh_step_size = 0.005
  config.ebm.init_low = -4.5
  config.ebm.init_high = 4.5
  config.ebm.data_noise = 0.0
  config.ebm.energy_l2 = 0.01
  config.train.batch_size = 256
  config.train.num_steps = 5_000
  config.train.log_every = 250
  config.train.checkpoint_every = 1_000
  config.train.sample_every = 1_000
  config.eval.num_samples = 5_000
  config.eval.num_tv_samples = 20_000
  return default.finish(config, arg)
