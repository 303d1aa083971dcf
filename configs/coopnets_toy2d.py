"""CoopNets on 2-D toy data (default 8 Gaussians): MLP descriptor with a Gaussian reference."""
from configs import default


def get_config(arg=None):
  config = default.toy2d(default.get_config())
  config.method = 'coopnets'
  config.model.z_dim = 8
  config.model.energy_reference_std = 2.0
  config.model.sigma = 0.3
  config.coopnets.optim.energy.lr = 1e-3
  config.coopnets.optim.generator.lr = 1e-3
  config.coopnets.n_steps = 30
  config.coopnets.step_size = 0.1
  config.coopnets.energy_l2 = 0.01
  config.eval.num_tv_samples = 20_000
  # A data/sample energy gap above 10 nats at unit temperature: the chains no longer sample
  # exp(−E). The guard rolls back to the last good checkpoint at lower learning rates.
  config.guard.max_energy_gap = 10.0
  config.guard.policy = 'rollback'
  config.eval.long_run_factor = 0
  return default.finish(config, arg)
