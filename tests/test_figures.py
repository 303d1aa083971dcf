"""Figures are readable: small images are enlarged, every PNG carries a caption band."""
import numpy as np
from PIL import Image

from egm.figures import images


def test_small_images_are_enlarged_and_captioned(tmp_path):
  x = np.linspace(-1, 1, 4 * 8 * 8).reshape(4, 8, 8, 1)
  with images.figure_label('vae on digits, step 7'):
    images.save_image_grid(tmp_path / 'samples.png', x, ncols=4)
    assert images.caption_for(tmp_path / 'samples.png') == 'model samples - vae on digits, step 7'
  assert images.caption_for(tmp_path / 'samples.png') == 'model samples'  # label left behind
  png = np.asarray(Image.open(tmp_path / 'samples.png'))
  factor = images.enlargement(8)
  assert factor * 8 >= images.MIN_TILE
  grid = images.image_grid(np.repeat(np.repeat(x, factor, 1), factor, 2), ncols=4)
  band = png.shape[0] - grid.shape[0]
  assert png.shape[1] == grid.shape[1] >= 4 * images.MIN_TILE and band > 0
  np.testing.assert_array_equal(png[band:], grid[..., 0])  # the enlarged grid under the band
  assert png[:band].min() < 128  # the caption is drawn (dark text on white)


def test_large_images_keep_their_size_and_points_get_a_caption(tmp_path):
  x = np.zeros((2, 64, 64, 3))
  images.save_image_grid(tmp_path / 'g.png', x, ncols=2, caption='two black squares')
  png = np.asarray(Image.open(tmp_path / 'g.png'))
  assert png.shape[1] == images.image_grid(x, ncols=2).shape[1]
  images.save_points_png(tmp_path / 'p.png', np.zeros((5, 2)), 2.0, size=64)
  assert np.asarray(Image.open(tmp_path / 'p.png')).shape[0] > 64
