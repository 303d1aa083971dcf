"""The non-convergent short-run EBM on 2-D toy data: cold chains (temperature 0.1), K = 50 steps.

x ← x − 0.05·∇E + 0.1·ε has temperature 0.1²/(2·0.05) = 0.1: like the CIFAR
reference (step 1, noise 0.01), the K-step chains are not samplers of exp(−E),
and the energy learns to make K cold steps from noise land on the data. Its
long-run chains drift away from the data while `ebm_toy2d.py` (unit
temperature) keeps them close: `python eval.py` reports both (the anatomy of
arXiv 1903.12370).
"""
from configs import default, ebm_toy2d


def get_config(arg=None):
  config = ebm_toy2d.get_config()
  config.ebm.n_steps = 50
  config.ebm.step_size = 0.05
  config.ebm.noise_scale = 0.1
  return default.finish(config, arg)
