"""CoopNets on CIFAR-10 32x32.

The descriptor is the 32x32 ConvNet EBM plus the Gaussian reference energy
‖y‖²/(2σ²); 15 unit-temperature descriptor Langevin steps y ← y − δ²/2·∇E + δ·ε
revise each proposal; the generator regresses onto the revisions with σ_g = 0.3;
Adam β1 = 0.5, lr 1e-3 (descriptor) and 1e-4 (generator), as in the reference code.
Departs from the reference's σ = 0.016 and δ = 0.002 in egm's [-1, 1] pixel units: σ = 1
and δ = 0.02 (why: docs/methods/coopnets.md). As in the reference, revisions are not
clamped to [-1, 1] (`coopnets.clamp`; the Fashion-MNIST and texture configs clamp).
Offline, train on the JPEG archive:
--config.data.source=folder:../shared/data/cifar10_jpeg.tar.gz
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'coopnets'
  config.data.source = 'tfds:cifar10'
  config.model.z_dim = 100
  config.model.energy_reference_std = 1.0
  config.model.sigma = 0.3
  config.coopnets.optim.energy.lr = 1e-3
  config.coopnets.optim.generator.lr = 1e-4
  config.optim.b1 = 0.5
  config.coopnets.n_steps = 15
  config.coopnets.step_size = 0.02
  config.coopnets.clamp = False
  config.train.batch_size = 100
  config.train.num_steps = 50_000
  config.eval.long_run_factor = 0
  return default.finish(config, arg)
