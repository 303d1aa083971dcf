"""Short-run MCMC EBM on 2-D toy data (default 8 Gaussians): MLP energy, chains from uniform noise."""
from configs import default


def get_config(arg=None):
  config = default.toy2d(default.get_config())
  config.method = 'ebm'
  config.ebm.optim.energy.lr = 1e-3
  # Temperature noise²/(2·step) = 1: exp(−E) itself is the density the chains sample (the MH
  # long run's proposal is this training step).
  config.ebm.n_steps = 60
  config.ebm.step_size = 0.02
  config.ebm.noise_scale = 0.2
  config.ebm.init_low = -4.5
  config.ebm.init_high = 4.5
  config.ebm.data_noise = 0.0
  config.ebm.energy_l2 = 0.01
  config.eval.num_tv_samples = 20_000
  # A data/sample energy gap above 10 nats at unit temperature: the chains no longer sample
  # exp(−E). The guard rolls back to the last good checkpoint at lower learning rates.
  config.guard.max_energy_gap = 10.0
  config.guard.policy = 'rollback'
  return default.finish(config, arg)
