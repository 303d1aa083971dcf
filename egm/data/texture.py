"""`texture:NAME_OR_PATH` — random crops of one texture image, for texture synthesis.

NAME is one of scikit-image's bundled grey textures (brick, grass, gravel) or `hubble`, a
512x512 crop of its colour photo of the Hubble deep field (a colour exemplar; pass
`--config.data.channels=3`); any other argument is read as an image file. The exemplar is
converted to `config.data.channels`, resized so its shorter side is `config.data.texture_size`
pixels (0 keeps it as it is), and cut into `NUM_TRAIN` + `NUM_TEST` random
crops of `config.data.image_size` pixels: the training crops come from the
left 3/4 of the exemplar and the test crops from the right 1/4, so test crops
are pixels the model never saw. The whole exemplar rides along as
`Dataset.exemplar` for synthesis statistics.
"""
import os

import numpy as np
import PIL.Image

from egm.data.dataset import ArraySource, Dataset, LoadOptions
from egm.data.sources import register, require_path
from egm.errors import EgmError

SKIMAGE_TEXTURES = ('brick', 'grass', 'gravel')
# name -> (scikit-image photo, (top, left, size) of the square crop)
SKIMAGE_CROPS = {'hubble': ('hubble_deep_field', (0, 0, 512))}
NUM_TRAIN = 4096
NUM_TEST = 512
_SEED = 1234


def exemplar_image(argument: str, options: LoadOptions) -> np.ndarray:
  """The exemplar as uint8 (H, W, channels), resized to `options.texture_size`."""
  source = f'texture:{argument}'
  if argument in SKIMAGE_TEXTURES or argument in SKIMAGE_CROPS:
    import skimage.data  # pylint: disable=g-import-not-at-top
    photo, (top, left, size) = SKIMAGE_CROPS.get(argument, (argument, (0, 0, None)))
    pixels = getattr(skimage.data, photo)()
    if size is not None:
      pixels = pixels[top:top + size, left:left + size]
    image = PIL.Image.fromarray(pixels)
  else:
    if not os.path.splitext(argument)[1]:
      raise EgmError(
          f'Unknown texture {argument!r} in {source!r}: name one of '
          f'{", ".join(SKIMAGE_TEXTURES + tuple(SKIMAGE_CROPS))} or give the path of an image '
          'file (e.g. texture:my_texture.png).')
    path = require_path(argument, source)
    try:
      image = PIL.Image.open(path)
      image.load()
    except (OSError, SyntaxError) as e:
      raise EgmError(f'Cannot read the texture image {path!r} ({e}). Give a PNG or JPEG file.') \
          from e
  image = image.convert('L' if options.channels == 1 else 'RGB')
  if options.texture_size:
    scale = options.texture_size / min(image.size)
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    image = image.resize(size, PIL.Image.Resampling.BICUBIC)
  return np.asarray(image, np.uint8).reshape(image.size[1], image.size[0], options.channels)


def random_crops(image: np.ndarray, size: int, n: int, rng: np.random.Generator) -> np.ndarray:
  """n random size x size crops of uint8 (H, W, C): (n, size, size, C)."""
  height, width = image.shape[:2]
  tops = rng.integers(0, height - size + 1, n)
  lefts = rng.integers(0, width - size + 1, n)
  return np.stack([image[t:t + size, l:l + size] for t, l in zip(tops, lefts)])


@register('texture')
def load_texture(argument: str, options: LoadOptions) -> Dataset:
  """Crops of one texture; raises EgmError when the exemplar is too small for the crop."""
  exemplar = exemplar_image(argument, options)
  height, width = exemplar.shape[:2]
  size = options.image_size
  test_width = width // 4
  if height < size or width - test_width < size or test_width < size:
    raise EgmError(
        f'The texture image of texture:{argument} is {height}x{width} pixels after resizing '
        f'(config.data.texture_size={options.texture_size}), too small for crops of '
        f'{size}x{size} (config.data.image_size): it needs at least {size} rows and '
        f'{4 * size} columns, since the right quarter is kept for test crops. Lower '
        '--config.data.image_size, raise --config.data.texture_size, or use a larger image.')
  rng = np.random.default_rng(_SEED)
  train = random_crops(exemplar[:, :width - test_width], size, NUM_TRAIN, rng)
  test = random_crops(exemplar[:, width - test_width:], size, NUM_TEST, rng)
  named = argument in SKIMAGE_TEXTURES or argument in SKIMAGE_CROPS
  name = argument if named else os.path.basename(argument)
  return Dataset(name=f'texture_{name}', kind='image', train=ArraySource(train),
                 test=ArraySource(test), num_classes=None, exemplar=exemplar)
