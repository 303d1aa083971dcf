"""The FID Inception-v3 network in Flax and the loader of its published PyTorch weights.

Architecture of pytorch-fid's `fid_inception_v3` (torchvision's Inception3 with the FID blocks:
average pools that do not count padding, a max pool in the last block, 1008 classes), whose
weights are `pt_inception-2015-12-05-6726825d.pth`. Parameter names follow the PyTorch module
names, so `Mixed_5b.branch1x1.conv.weight` becomes params['Mixed_5b']['branch1x1']['conv'].
"""

import functools
import os

from flax import traverse_util
from flax.core import unfreeze
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from egm.errors import EgmError
from egm.evaluation import torch_checkpoint

WEIGHTS_ENV = 'EGM_INCEPTION_WEIGHTS'
WEIGHTS_FILE = 'pt_inception-2015-12-05-6726825d.pth'
INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008
_BN_EPSILON = 1e-3


class BasicConv(nn.Module):
  """Conv (no bias) -> BatchNorm (running statistics, eps 1e-3) -> ReLU."""
  features: int
  kernel: tuple[int, int]
  strides: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    pad = tuple((p, p) for p in self.padding)
    x = nn.Conv(self.features, self.kernel, self.strides, pad, use_bias=False, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=_BN_EPSILON, name='bn')(x)
    return nn.relu(x)


def _conv(name, features, kernel=1, strides=1, padding=0):
  kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
  padding = (padding, padding) if isinstance(padding, int) else padding
  return BasicConv(features, kernel, strides, padding, name=name)


def _avg_pool_same(x):
  """3x3 stride-1 average over the in-image pixels only (count_include_pad=False)."""
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x, strides=2, padding=0):
  return nn.max_pool(x, (3, 3), (strides, strides), ((padding, padding), (padding, padding)))


class InceptionA(nn.Module):
  """FIDInceptionA: 35x35 block; out channels 224 + pool_features."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = _conv('branch1x1', 64)(x)
    b5 = _conv('branch5x5_2', 64, 5, padding=2)(_conv('branch5x5_1', 48)(x))
    b3 = _conv('branch3x3dbl_1', 64)(x)
    b3 = _conv('branch3x3dbl_2', 96, 3, padding=1)(b3)
    b3 = _conv('branch3x3dbl_3', 96, 3, padding=1)(b3)
    bp = _conv('branch_pool', self.pool_features)(_avg_pool_same(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Grid reduction 35x35 -> 17x17 (Mixed_6a)."""

  @nn.compact
  def __call__(self, x):
    b3 = _conv('branch3x3', 384, 3, strides=2)(x)
    bd = _conv('branch3x3dbl_1', 64)(x)
    bd = _conv('branch3x3dbl_2', 96, 3, padding=1)(bd)
    bd = _conv('branch3x3dbl_3', 96, 3, strides=2)(bd)
    return jnp.concatenate([b3, bd, _max_pool(x)], axis=-1)


class InceptionC(nn.Module):
  """FIDInceptionC: 17x17 block with factorised 7x7 convolutions; 768 out channels."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = _conv('branch1x1', 192)(x)
    b7 = _conv('branch7x7_1', c7)(x)
    b7 = _conv('branch7x7_2', c7, (1, 7), padding=(0, 3))(b7)
    b7 = _conv('branch7x7_3', 192, (7, 1), padding=(3, 0))(b7)
    bd = _conv('branch7x7dbl_1', c7)(x)
    bd = _conv('branch7x7dbl_2', c7, (7, 1), padding=(3, 0))(bd)
    bd = _conv('branch7x7dbl_3', c7, (1, 7), padding=(0, 3))(bd)
    bd = _conv('branch7x7dbl_4', c7, (7, 1), padding=(3, 0))(bd)
    bd = _conv('branch7x7dbl_5', 192, (1, 7), padding=(0, 3))(bd)
    bp = _conv('branch_pool', 192)(_avg_pool_same(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Grid reduction 17x17 -> 8x8 (Mixed_7a)."""

  @nn.compact
  def __call__(self, x):
    b3 = _conv('branch3x3_2', 320, 3, strides=2)(_conv('branch3x3_1', 192)(x))
    b7 = _conv('branch7x7x3_1', 192)(x)
    b7 = _conv('branch7x7x3_2', 192, (1, 7), padding=(0, 3))(b7)
    b7 = _conv('branch7x7x3_3', 192, (7, 1), padding=(3, 0))(b7)
    b7 = _conv('branch7x7x3_4', 192, 3, strides=2)(b7)
    return jnp.concatenate([b3, b7, _max_pool(x)], axis=-1)


class InceptionE(nn.Module):
  """FIDInceptionE_1 (average pool) or FIDInceptionE_2 (max pool); 2048 out channels."""
  max_pool: bool

  @nn.compact
  def __call__(self, x):
    b1 = _conv('branch1x1', 320)(x)
    b3 = _conv('branch3x3_1', 384)(x)
    b3 = jnp.concatenate([_conv('branch3x3_2a', 384, (1, 3), padding=(0, 1))(b3),
                          _conv('branch3x3_2b', 384, (3, 1), padding=(1, 0))(b3)], axis=-1)
    bd = _conv('branch3x3dbl_1', 448)(x)
    bd = _conv('branch3x3dbl_2', 384, 3, padding=1)(bd)
    bd = jnp.concatenate([_conv('branch3x3dbl_3a', 384, (1, 3), padding=(0, 1))(bd),
                          _conv('branch3x3dbl_3b', 384, (3, 1), padding=(1, 0))(bd)], axis=-1)
    pooled = _max_pool(x, strides=1, padding=1) if self.max_pool else _avg_pool_same(x)
    bp = _conv('branch_pool', 192)(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
  """FID Inception-v3: images (N, H, W, 3) in [-1, 1] -> (pool3 (N, 2048), logits (N, 1008)).

  Images are resized to 299x299 bilinearly (half-pixel centres, no antialiasing, as PyTorch's
  `F.interpolate(align_corners=False)`); [-1, 1] is the range pytorch-fid's `normalize_input`
  produces, so egm images enter unchanged.
  """

  @nn.compact
  def __call__(self, images):
    n, h, w, c = images.shape
    x = images.astype(jnp.float32)
    if (h, w) != (INPUT_SIZE, INPUT_SIZE):
      x = jax.image.resize(x, (n, INPUT_SIZE, INPUT_SIZE, c), 'bilinear', antialias=False)
    x = _conv('Conv2d_1a_3x3', 32, 3, strides=2)(x)
    x = _conv('Conv2d_2a_3x3', 32, 3)(x)
    x = _max_pool(_conv('Conv2d_2b_3x3', 64, 3, padding=1)(x))
    x = _conv('Conv2d_3b_1x1', 80)(x)
    x = _max_pool(_conv('Conv2d_4a_3x3', 192, 3)(x))
    x = InceptionA(32, name='Mixed_5b')(x)
    x = InceptionA(64, name='Mixed_5c')(x)
    x = InceptionA(64, name='Mixed_5d')(x)
    x = InceptionB(name='Mixed_6a')(x)
    for name, c7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160), ('Mixed_6e', 192)):
      x = InceptionC(c7, name=name)(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = InceptionE(max_pool=False, name='Mixed_7b')(x)
    x = InceptionE(max_pool=True, name='Mixed_7c')(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    return pool3, nn.Dense(NUM_CLASSES, name='fc')(pool3)


_TO_TORCH_AXES = {4: (3, 2, 0, 1), 2: (1, 0)}  # Conv HWIO -> OIHW, dense (in, out) -> (out, in).
_FROM_TORCH_AXES = {4: (2, 3, 1, 0), 2: (1, 0)}
_TORCH_LEAF_NAMES = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias',
                     'mean': 'running_mean', 'var': 'running_var'}


def _torch_name(path: tuple[str, ...]) -> str:
  """Flax variable path ('params', ..., 'conv', 'kernel') -> PyTorch state-dict key."""
  _, *modules, leaf = path
  return '.'.join(modules + [_TORCH_LEAF_NAMES[leaf]])


def _torch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
  return tuple(shape[a] for a in _TO_TORCH_AXES.get(len(shape), range(len(shape))))


def _from_torch_layout(array: np.ndarray) -> np.ndarray:
  return array.transpose(_FROM_TORCH_AXES.get(array.ndim, range(array.ndim)))


@functools.cache
def _variable_shapes() -> dict[tuple[str, ...], tuple[int, ...]]:
  """Flax variable path -> shape, from the architecture (traced, not computed)."""
  shapes = jax.eval_shape(InceptionV3().init, jax.random.key(0),
                          jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))
  flat = traverse_util.flatten_dict(unfreeze(shapes))
  return {path: tuple(leaf.shape) for path, leaf in flat.items()}


def expected_state_shapes() -> dict[str, tuple[int, ...]]:
  """PyTorch key -> PyTorch shape of every tensor the weights file must hold."""
  return {_torch_name(path): _torch_shape(shape) for path, shape in _variable_shapes().items()}


def random_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
  """A state dict with the keys, shapes and dtypes of the real weights file, random values.

  Conv and dense weights are He-scaled normals, BatchNorm statistics positive and near 1, so
  activations stay finite through the 94 layers. Includes the BatchNorm `num_batches_tracked`
  counters that `nn.BatchNorm2d.state_dict()` holds (the loader ignores them).
  """
  rng = np.random.default_rng(seed)
  state = {}
  for key, shape in expected_state_shapes().items():
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if key.endswith('running_var') or (key.endswith('.weight') and '.bn.' in key):
      value = rng.uniform(0.5, 1.5, shape)
    elif len(shape) > 1:
      value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    else:
      value = rng.normal(0.0, 0.1, shape)
    state[key] = value.astype(np.float32)
    if key.endswith('.bn.running_var'):
      state[key[:-len('running_var')] + 'num_batches_tracked'] = np.array(0, np.int64)
  return state


def save_state_dict(path: str, state: dict[str, np.ndarray]) -> None:
  """Writes a state dict as .npz (if the path ends so) or in torch.save's zip format."""
  if str(path).endswith('.npz'):
    np.savez(path, **state)
  else:
    torch_checkpoint.write_torch_state_dict(path, state)


def state_dict_to_variables(state: dict[str, np.ndarray]) -> dict:
  """PyTorch state dict -> Flax {'params', 'batch_stats'}; checks every key and shape."""
  shapes = _variable_shapes()
  expected = {_torch_name(p) for p in shapes}
  missing = sorted(expected - set(state))
  unexpected = sorted(k for k in set(state) - expected if not k.endswith('num_batches_tracked'))
  if missing or unexpected:
    raise EgmError(
        f'The Inception weights do not match the FID Inception-v3: {len(missing)} missing keys '
        f'(first: {missing[:3]}) and {len(unexpected)} unexpected keys (first: '
        f'{unexpected[:3]}). Pass {WEIGHTS_FILE}, the weights of pytorch-fid\'s network.')
  flat = {}
  for path, shape in shapes.items():
    key = _torch_name(path)
    value = np.asarray(state[key])
    torch_shape = _torch_shape(shape)
    if value.shape != torch_shape:
      raise EgmError(
          f'Inception weight {key} has shape {value.shape}, expected {torch_shape}. The file is '
          f'not {WEIGHTS_FILE} (pytorch-fid\'s FID Inception-v3 with 1008 classes).')
    flat[path] = jnp.asarray(_from_torch_layout(value).astype(np.float32))
  return traverse_util.unflatten_dict(flat)


def weights_path(path: str | None = None) -> str:
  """The weights file: `path` if given, else $EGM_INCEPTION_WEIGHTS; checks it exists."""
  path = path or os.environ.get(WEIGHTS_ENV)
  if not path:
    raise EgmError(
        f'Inception metrics need the weights file {WEIGHTS_FILE}, which cannot be downloaded '
        f'here. Give its path with the inception weights flag/config key or the environment '
        f'variable {WEIGHTS_ENV}, or use the project classifier\'s feature metrics.')
  if not os.path.isfile(path):
    raise EgmError(f'Inception weights file {path} does not exist. Check the path given by the '
                   f'flag/config key or ${WEIGHTS_ENV}.')
  return path


def load_inception(path: str | None = None) -> dict:
  """Reads the FID Inception weights (.pth, or .npz of its arrays) -> Flax variables."""
  path = weights_path(path)
  if path.endswith('.npz'):
    try:
      with np.load(path) as data:
        state = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
      raise EgmError(f'Could not read {path} as an .npz of Inception weights: {e}') from e
  else:
    state = torch_checkpoint.read_torch_state_dict(path)
  return state_dict_to_variables(state)


def inception_fn(variables: dict):
  """Jitted images (N, H, W, 1 or 3) in [-1, 1] -> (pool3 (N, 2048), logits (N, 1008)).

  Grey images are repeated to 3 channels; other channel counts raise EgmError.
  """
  model = InceptionV3()

  @jax.jit
  def apply(images):
    channels = images.shape[-1]
    if images.ndim != 4 or channels not in (1, 3):
      raise EgmError(
          f'The Inception network takes images (N, H, W, 3) (grey (N, H, W, 1) are repeated to '
          f'3 channels), but got shape {images.shape}. Pass NHWC RGB or grey images.')
    if channels == 1:
      images = jnp.repeat(images, 3, axis=-1)
    return model.apply(variables, images)

  return apply
