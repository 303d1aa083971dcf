"""Divergence triangle on CIFAR-10 (tfds), the reference settings of Han et al. 2019.

The settings of the authors' code (enijkamp/triangle, train_cifar10.py): batch 100, z 100,
widths 64, Adam β1 0.5, lr E 1e-4 / G 3e-4 / I 3e-4 decaying 0.998 per epoch, clip 100,
weight decay 5e-4 on G (L2 in the gradient, as torch's Adam), and its loss form,
`triangle.loss_form = 'reference_code'`: weight 1 on the squared error summed over pixels
(no 1/(2σ²)) and the KL averaged over the z dimensions, each a mean over the batch. Its
update order and networks are options (`triangle.update_order=sequential`,
`model.architecture=dcgan`). `--config.method=vae` trains the VAE baseline with the same
reconstruction and KL form and weights, and the same generator settings.

Offline: --config.data.source=folder:../shared/data/cifar10_jpeg.tar.gz
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.method = 'triangle'
  config.data.source = 'tfds:cifar10'
  config.triangle.loss_form = config.vae.loss_form = 'reference_code'
  config.triangle.optim.generator.weight_decay = 5e-4
  config.vae.optim.generator.weight_decay = 5e-4
  config.train.batch_size = 100
  config.train.num_steps = 100_000
  return default.finish(config, arg)
