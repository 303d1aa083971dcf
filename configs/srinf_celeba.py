"""Short-run inference with a learned step (`method=srinf`) on CelebA at 32x32, the paper's
setting (arXiv 1912.01909; its public code: five latent layers of 64, 64, 64, 96, 128 dims,
GELU, no BatchNorm, σ 0.15, 25 Langevin steps of δ 0.05 from the prior, Adam 8e-5, β1 0.5,
batch 100). Here δ starts at 0.05 and is learned. `:image_size=64` runs the 64 px model
(the same five layers then enter at 4 ... 64 px).

CelebA cannot be prepared on this machine (tfds needs internet and TensorFlow to build
it). On a machine with both: `pip install -e '.[tfds-build]'`, then
`tfds build celeb_a --data_dir ~/tensorflow_datasets --file_format=array_record` (its
download from Google Drive is sometimes over quota: retry later or place the files in
tfds's manual/downloads dir), and copy ~/tensorflow_datasets/celeb_a here (or point
--config.data.data_dir / $TFDS_DATA_DIR at it). The 218x178 images are centre-cropped to a
square and resized to data.image_size.

`:smoke` trains on a substitute that is always here, scikit-learn's 8x8 digits (grey), with
three latent layers (8 px takes at most 4), so the config can be checked end to end offline.
"""
from configs import default, srinf_cifar


def get_config(arg=None):
  config = srinf_cifar.get_config()  # the paper's model and settings
  config.data.source = 'tfds:celeb_a'
  config.data.image_size = 32
  config.data.channels = 3
  config.train.num_steps = 200_000
  config.train.checkpoint_every = 5_000
  config.train.sample_every = 5_000
  if 'smoke' in [item.strip() for item in (arg or '').split(',')]:
    config.data.source = 'sklearn:digits'  # CelebA is not prepared offline
    config.data.image_size = 8
    config.data.channels = 1
    config.srinf.latent_dims = '64,64,96'
    config.eval.completion_mask = 'block:4'
  return default.finish(config, arg)
