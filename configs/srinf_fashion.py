"""Short-run inference with a learned step (`method=srinf`) on Fashion-MNIST, 28x28 grey.

Three latent layers (32, 48, 64 dims, top first: 28 px takes at most 3, entering at 7, 14
and 28 px), width 16 (64, 32, 16 channels at 7, 14, 28 px: 38 MFLOP and 0.54M parameters per
generator pass, against 60 MFLOP and 0.77M for the generator of `triangle_fashion.py` that
vae and abp use), σ 0.3; 25 Langevin steps from the prior per update, the step δ (initially
0.05) learned by the auxiliary KL bound (egm/methods/srinf.py) on every 5th update. Adam 2e-4
for the generator, 1e-2 for log δ. The real data offline: `python -m egm.data.fashion_mnist
data/fashion_mnist`, then
--config.data.source=idx:data/fashion_mnist/usr/share/datasets/fashion-mnist
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'srinf'
  config.data.source = 'tfds:fashion_mnist'
  config.data.image_size = 28
  config.data.channels = 1
  config.model.width = 16
  config.model.sigma = 0.3
  config.srinf.latent_dims = '32,48,64'
  config.srinf.n_steps = 25
  config.srinf.step_size = 0.05
  config.srinf.step_size_every = 5
  config.srinf.optim.step_size.lr = 1e-2
  config.srinf.optim.generator.lr = 2e-4
  config.train.batch_size = 100
  config.train.num_steps = 30_000
  config.train.checkpoint_every = 1_000
  config.train.sample_every = 1_000
  return default.finish(config, arg)
