"""The defaults of every config key: what a config file patches and a saved run lacks.

Every key a method or the trainer reads is declared here, so that a mistyped
`--config.<key>=...` override fails with the list of valid keys, and a run saved
before a key existed loads with that key's default (`with_defaults`).
"""
import ml_collections


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
  config.data.max_examples = 0  # >0 keeps only the first N training examples
  config.data.holdout = 0  # >0 makes the last N training examples the test split
  config.data.texture_size = 0  # texture: sources: exemplar's shorter side in pixels (0: as is)

  config.model = ml_collections.ConfigDict()
  config.model.architecture = 'auto'  # 'auto' (MLPs for points, ConvNets for images) | 'texture'
  config.model.z_dim = 100
  config.model.width = 64  # base channel count of the conv nets / hidden units of the MLPs
  # texture descriptor: stride-2 stages; each score sees 3·2^stages px (2: 12 px, 4: 48 px)
  config.model.texture_energy_stages = 2
  config.model.mlp_depth = 3  # hidden layers of the 2-D MLP nets
  config.model.energy_reference_std = 0.0  # >0 adds ‖x‖²/(2 std²) to E (Gaussian reference)
  # 'bfloat16': the image ConvNet energy computes in bf16 (chains, parameters stay float32)
  config.model.energy_dtype = 'float32'
  config.model.sigma = 0.3  # Gaussian observation noise of G, in [-1, 1] units

  config.optim = ml_collections.ConfigDict()
  config.optim.lr_energy = 1e-4
  config.optim.lr_generator = 3e-4
  config.optim.lr_encoder = 3e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  config.optim.decay_per_epoch = 0.998  # multiplicative lr decay per epoch
  config.optim.grad_clip = 100.0  # global-norm clip per network; 0 disables

  config.triangle = ml_collections.ConfigDict()
  config.triangle.entropy_weight = 0.1  # weight of -log q(z|G(z)) in the I and G losses
  config.triangle.energy_weight = 1.0  # weight of E(G(z)) in the G loss
  config.triangle.energy_l2 = 0.0  # weight of mean E^2 regulariser on the EBM

  config.ebm = ml_collections.ConfigDict()
  config.ebm.n_steps = 100  # K short-run Langevin steps per update
  config.ebm.step_size = 1.0  # s in x <- x - s * dE/dx + noise_scale * eps
  config.ebm.noise_scale = 0.01
  config.ebm.mh_step_size = 1e-4  # step of the MH-adjusted (MALA) diagnostic chains
  config.ebm.init_low = -1.0  # chains start uniform in [init_low, init_high]
  config.ebm.init_high = 1.0
  config.ebm.data_noise = 0.03  # std of Gaussian noise added to data, [-1, 1] units
  config.ebm.persistent = False  # replay buffer of chains instead of fresh noise
  config.ebm.buffer_size = 10_000
  config.ebm.rejuvenation = 0.05  # fraction of buffer chains restarted from noise
  config.ebm.energy_l2 = 0.0  # weight of mean E^2

  config.classifier = ml_collections.ConfigDict()  # method=classifier (a feature network)
  config.classifier.num_classes = 10
  config.classifier.feature_dim = 128  # width of the penultimate layer (the feature space)
  config.classifier.lr = 1e-3
  config.classifier.random_flip = False  # mirror each training image left-right with prob. 1/2
  config.classifier.feature_name = 'classifier'  # metrics in its space: fid_<feature_name>, ...

  config.coopnets = ml_collections.ConfigDict()
  config.coopnets.n_steps = 15  # K descriptor Langevin steps revising each proposal
  config.coopnets.step_size = 0.002  # δ in y <- y - δ²/2 dE/dy + δ·eps (unit temperature)
  config.coopnets.infer_steps = 0  # z-space Langevin steps inferring z for the revised x (0: off)
  config.coopnets.infer_step_size = 0.1  # δ_z of the z-space Langevin
  config.coopnets.completion_infer_steps = 100  # z-space steps on observed pixels in completion
  config.coopnets.completion_samples = 8  # completions averaged into the fill (1: one sample)
  config.coopnets.energy_l2 = 0.0  # weight of mean E^2 on the descriptor

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 100  # global batch, split over all devices of all processes
  config.train.num_steps = 100_000
  config.train.log_every = 100
  config.train.checkpoint_every = 2_000
  config.train.sample_every = 2_000
  config.train.keep_checkpoints = 3
  config.train.max_minutes = 0.0  # >0: stop (with a checkpoint) after this time; one process

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
  config.eval.completion_mask = 'block:14'  # occlusion for pattern completion (methods with it)
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


def with_defaults(saved: dict) -> ml_collections.ConfigDict:
  """A run's saved config (the dict of its config.json) over `base_config()`: keys added
  since the run was saved take their defaults."""
  config = base_config()
  config.update(saved)
  return config
