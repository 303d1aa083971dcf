"""The "convergent" CIFAR-10 EBM variant: persistent chains and hotter noise so long-run samples stay close.

Following the anatomy study (arXiv 1903.12370): chains persist in a 10k replay buffer with 5%
rejuvenation from noise, and the noise is raised towards the proper Langevin value for the step, so
the learned exp(−E) is what long chains sample. Settings are a starting point, not yet verified
against long-run sample quality on this project.
"""
from configs import default, ebm_cifar


def get_config(arg=None):
  config = ebm_cifar.get_config()
  config.ebm.persistent = True
  config.ebm.buffer_size = 10_000
  config.ebm.rejuvenation = 0.05
  config.ebm.step_size = 0.005
  config.ebm.noise_scale = 0.1  # temperature noise²/(2·step) = 1
  config.ebm.energy_l2 = 1e-3
  config.ebm.clamp = True  # written for chains clamped to [-1, 1]
  config.eval.long_run_factor = 20
  return default.finish(config, arg)
