"""The defaults of every config key: what a config file patches and a saved run lacks.

The shared sections (data, model, optim, train, eval) are declared here; each method's
section comes from the method itself (`config_section()`, see egm/methods/contract.py), so
a mistyped `--config.<key>=...` override fails with the list of valid keys, and a run saved
before a key existed loads with that key's default (`with_defaults`).
"""
import ml_collections

from egm.config import migrations
from egm.methods import contract, optim


def base_config() -> ml_collections.ConfigDict:
  """The base config: the divergence triangle on CIFAR-10 via tfds, every key declared."""
  config = ml_collections.ConfigDict()
  config.method = 'triangle'
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.source = 'tfds:cifar10'  # see egm/data/sources.py for all forms
  config.data.data_dir = ''  # tfds data dir; '' means $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.data.image_size = 32  # images are resized to image_size x image_size
  config.data.channels = 3  # 1 (grey) or 3 (RGB); sources are converted to this
  config.data.train_split = 'train'
  config.data.test_split = 'test'
  config.data.mask = 'none'  # 'none' | 'pixels:<fraction>' | 'block:<side>' (incomplete data)
  config.data.dequantize = 0.0  # std of Gaussian noise added to training data in [-1, 1] units
  config.data.prefetch = 2  # batches prepared ahead on a background thread
  config.data.max_examples = 0  # >0 keeps a seeded uniform sample of N training examples
  config.data.holdout = 0  # >0 moves a seeded uniform sample of N training examples to test
  config.data.texture_size = 0  # texture: sources: exemplar's shorter side in pixels (0: as is)

  config.model = ml_collections.ConfigDict()
  # 'auto' (MLPs for points, ConvNets for images) | 'texture' | 'resnet' (residual nets) |
  # 'dcgan' (the divergence triangle's reference nets, egm/nets/dcgan.py)
  config.model.architecture = 'auto'
  config.model.z_dim = 100
  config.model.width = 64  # base channel count of the conv nets / hidden units of the MLPs
  # texture descriptor: stride-2 stages; each score sees 3·2^stages px (2: 12 px, 4: 48 px)
  config.model.texture_energy_stages = 2
  config.model.mlp_depth = 3  # hidden layers of the 2-D MLP nets
  # resnet nets: channels per 2x stage, comma-separated ('': width·2^i, capped at 8·width)
  config.model.channel_plan = ''
  config.model.energy_reference_std = 0.0  # >0 adds ‖x‖²/(2 std²) to E (Gaussian reference)
  # 'bfloat16': the image ConvNet energy computes in bf16 (chains, parameters stay float32)
  config.model.energy_dtype = 'float32'
  config.model.sigma = 0.3  # Gaussian observation noise of G, in [-1, 1] units

  # Shared optimiser defaults (egm/methods/optim.py): lr, b1, b2, weight_decay, grad_clip
  # (global norm per network; 0 disables), decay_per_epoch (staircase; 1: constant). Each
  # method's section sets its networks' own (`<method>.optim.<network>.<key>`, unset: these).
  config.optim = optim.shared_defaults()

  for name, method in sorted(contract.registered_methods().items()):
    section = method.config_section()
    if section is not None:
      config[name] = section

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 100  # global batch, split over all devices of all processes
  config.train.num_steps = 100_000
  config.train.log_every = 100
  config.train.log_seconds = 60.0  # also log (progress, steps/s, ETA) at least this often
  config.train.checkpoint_every = 2_000
  config.train.sample_every = 2_000
  config.train.keep_checkpoints = 3
  config.train.max_minutes = 0.0  # >0: stop (with a checkpoint) after this time; one process

  # The divergence guard (egm/run/guard.py) checks the metrics fetched at log steps and before
  # every checkpoint against what the method watches (its `watch`, egm/methods/watch.py).
  config.guard = ml_collections.ConfigDict()
  config.guard.policy = 'stop'  # 'stop' (with a diagnosis) | 'rollback' | 'off'
  config.guard.lr_factor = 0.3  # rollback: the learning rates are multiplied by this
  config.guard.max_rollbacks = 3  # rollbacks before the guard stops the run
  config.guard.max_abs_energy = 1e5  # |mean energy| above this is an explosion
  config.guard.max_grad_norm = 1e7  # a watched gradient norm above this is an explosion
  config.guard.max_energy_gap = 1e4  # |E(data) − E(samples)| above this has blown up
  config.guard.min_relative_gap = 1e-6  # |gap| below this·max(1, |E|): a flat energy
  config.guard.max_clamp_fraction = 0.5  # chain coordinates at the clamp above this: stuck
  config.guard.min_spread = 0.03  # generator spread / data spread falling below this: collapsed

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 500
  config.eval.num_samples = 100  # images in the sample grid
  config.eval.max_test_examples = 10_000
  config.eval.grid_size = 200  # cells per side of the 2-D density grid
  config.eval.grid_extent = 4.5  # the 2-D grid spans [-extent, extent]^2
  config.eval.sample_grid_size = 50  # coarser grid for the histogram of generator samples
  config.eval.num_tv_samples = 100_000  # generator samples behind `sample_tv`
  config.eval.long_run_factor = 10  # long-run chains take this many times ebm.n_steps (0: none)
  config.eval.synthesis_size = 96  # texture data: side of the synthesised textures, in pixels
  config.eval.texture_syntheses = 4  # texture data: textures synthesised for the statistics
  # occlusion for pattern completion (methods with it): 'auto' (a block of half the image
  # side), 'block:<side>' or 'pixels:<fraction>'
  config.eval.completion_mask = 'auto'
  config.eval.completion_examples = 1_000  # test images completed
  config.eval.checkpoint_step = 0  # checkpoint evaluated: 0 for the newest, else its step
  config.eval.metrics = 'all'  # comma-separated names from egm/evaluation/registry.py, or 'all'
  config.eval.feature_workdir = ''  # workdir of a trained method=classifier run: feature metrics
  config.eval.inception_weights = ''  # FID Inception .pth/.npz; '' means $EGM_INCEPTION_WEIGHTS
  config.eval.num_fid_samples = 10_000  # generated and real images behind FID/KID/precision
  config.eval.ood_source = ''  # data source of out-of-distribution images for OOD AUROC
  config.eval.num_neighbours = 5  # nearest training images shown per sample
  config.eval.max_neighbour_examples = 10_000  # training images searched for neighbours
  config.eval.trajectory_frames = 8  # chain states shown per Langevin trajectory
  return config


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks `config` in place to a seconds-long run (the `:smoke` config argument)."""
  config.model.z_dim = min(config.model.z_dim, 8)
  config.model.width = min(config.model.width, 8)
  config.train.batch_size = 16
  config.train.num_steps = 6
  config.train.log_every = 2
  config.train.checkpoint_every = 3
  config.train.sample_every = 3
  config.eval.batch_size = 32
  config.eval.num_samples = 16
  config.eval.max_test_examples = 64
  config.eval.grid_size = 40
  config.eval.num_tv_samples = 4_000
  config.data.max_examples = 256
  config.eval.synthesis_size = min(config.eval.synthesis_size, 32)
  config.eval.texture_syntheses = min(config.eval.texture_syntheses, 2)
  config.eval.completion_examples = min(config.eval.completion_examples, 32)
  config.eval.long_run_factor = min(config.eval.long_run_factor, 2)
  config.eval.num_fid_samples = 64
  config.eval.max_neighbour_examples = 256
  for name, method in contract.registered_methods().items():
    if name in config:
      method.smoke(config[name])
  return config


def with_defaults(saved: dict) -> ml_collections.ConfigDict:
  """A run's saved config (the dict of its config.json) over `base_config()`: keys added
  since the run was saved take their defaults."""
  config = base_config()
  config.update(migrations.migrate(saved))
  return config
