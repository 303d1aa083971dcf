"""PNG figures: grids of images in [-1, 1], 2-D point clouds over a density.

Every figure is labelled: a caption band on top says what it shows (`CAPTIONS`, by file
name, or the caller's `caption`) and, inside `figure_label(...)`, which run it comes from
(method, data, step). Small images are enlarged (nearest neighbour, whole factors) so that
each tile is at least `MIN_TILE` pixels: a grid of 8x8 digits is readable.
"""

import contextlib
import contextvars
import math
import pathlib
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from egm.errors import EgmError

_TOLERANCE = 1e-3
_PAD_VALUE = 255
_LOW_COLOUR = np.array([255.0, 255.0, 255.0])  # Background where density is 0.
_HIGH_COLOUR = np.array([8.0, 48.0, 107.0])  # Background at the peak density.
_POINT_COLOUR = np.array([220, 30, 30], np.uint8)
_DOT = 2  # Points are drawn as _DOT x _DOT pixel squares.
MIN_TILE = 48  # images smaller than this (pixels per side) are enlarged in grids
_CAPTION_HEIGHT = 14  # pixels per caption line

CAPTIONS = {
    'samples': 'model samples',
    'reconstructions': 'test images (top) and their reconstructions (bottom)',
    'interpolations': 'decoded linear paths between the latents of two test images',
    'neighbours_pixel': 'each row: a sample, then its nearest training images (pixels)',
    'trajectories': "each row: one of the method's sampling chains, start to end",
    'short_vs_long_run': 'rows: short-run, long-run and MH long-run chains from noise',
    'completion': 'rows: occluded test images, their completions, the originals',
    'proposals': 'generator proposals (top) and their Langevin revisions (bottom)',
    'texture': 'the exemplar, then syntheses',
    'density': 'model density exp(-E)/Z with model samples',
    'true_density': 'true density with true samples',
    'short_run': 'short-run chain samples',
    'long_run': 'long-run chain samples',
    'long_run_mh': 'MH-adjusted long-run chain samples',
}
_RUN_LABEL = contextvars.ContextVar('run_label', default='')


@contextlib.contextmanager
def figure_label(label: str):
  """Figures saved inside this context name `label` (e.g. 'triangle on digits, step 3000')."""
  token = _RUN_LABEL.set(label)
  try:
    yield
  finally:
    _RUN_LABEL.reset(token)


def caption_for(path, caption: str | None = None) -> str:
  """The caption of the figure saved at `path`: what it shows, and the run's label."""
  stem = pathlib.Path(path).stem
  what = caption or CAPTIONS.get(stem) or CAPTIONS.get(stem.split('_step')[0]) or stem
  label = _RUN_LABEL.get()
  return f'{what} - {label}' if label else what


def _with_caption(pixels: np.ndarray, text: str) -> np.ndarray:
  """pixels (H, W[, 3]) uint8 with a white band of `text` (wrapped) above them."""
  width = pixels.shape[1]
  chars = max(8, width // 6)  # the default bitmap font is 6 px per character
  lines = textwrap.wrap(text, chars) or ['']
  band = Image.new('L' if pixels.ndim == 2 else 'RGB',
                   (width, _CAPTION_HEIGHT * len(lines) + 2), 'white')
  draw = ImageDraw.Draw(band)
  font = ImageFont.load_default()
  for i, line in enumerate(lines):
    draw.text((2, 1 + i * _CAPTION_HEIGHT), line, fill='black', font=font)
  return np.concatenate([np.asarray(band), pixels], axis=0)


def enlargement(side: int) -> int:
  """The whole factor that brings an image side up to at least MIN_TILE pixels."""
  return max(1, math.ceil(MIN_TILE / max(side, 1)))


def _to_uint8(images: np.ndarray) -> np.ndarray:
  """Maps [-1, 1] to {0, ..., 255}: -1 -> 0, 1 -> 255."""
  return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def image_grid(images: np.ndarray, ncols: int | None = None,
               pad: int = 1) -> np.ndarray:
  """Tiles images (N, H, W, C) in [-1, 1] into one uint8 array.

  The grid has shape (R * (H + pad) + pad, K * (W + pad) + pad, C). Image k
  sits at grid row k // K and column k % K, where K = ncols (default
  ceil(sqrt(N))) and R = ceil(N / K); gaps and empty cells are white. Pixel
  values map -1 -> 0 and 1 -> 255.
  """
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[0] == 0:
    raise EgmError(
        f'image_grid expects a non-empty batch of images with shape '
        f'(N, H, W, C), but got shape {images.shape}. Add a batch axis to a '
        'single image (images[None]) and a channel axis to greyscale images '
        '(images[..., None]).')
  n, h, w, c = images.shape
  if c not in (1, 3):
    raise EgmError(
        f'image_grid expects 1 (greyscale) or 3 (RGB) channels in the last '
        f'axis, but got {c} (shape {images.shape}). Pass NHWC images; '
        'transpose NCHW arrays with images.transpose(0, 2, 3, 1).')
  if not np.all(np.isfinite(images)):
    raise EgmError(
        'image_grid got images containing NaN or inf. Images must be finite '
        'and in [-1, 1]; the model that produced them has probably diverged.')
  low, high = float(images.min()), float(images.max())
  if low < -1.0 - _TOLERANCE or high > 1.0 + _TOLERANCE:
    raise EgmError(
        f'image_grid expects images in [-1, 1], but their values range over '
        f'[{low:.4g}, {high:.4g}]. Map them to [-1, 1] first, for example '
        'x / 127.5 - 1 for bytes or 2 * x - 1 for [0, 1], or clip samples.')
  if ncols is None:
    ncols = math.ceil(math.sqrt(n))
  if ncols < 1 or pad < 0:
    raise EgmError(
        f'image_grid needs ncols >= 1 and pad >= 0, got ncols={ncols} and '
        f'pad={pad}.')
  nrows = math.ceil(n / ncols)
  grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c),
                 _PAD_VALUE, np.uint8)
  pixels = _to_uint8(images)
  for k in range(n):
    top = pad + (k // ncols) * (h + pad)
    left = pad + (k % ncols) * (w + pad)
    grid[top:top + h, left:left + w] = pixels[k]
  return grid


def _save_png(path, pixels: np.ndarray, caption: str | None = None) -> None:
  """Writes uint8 pixels (H, W) or (H, W, 3) as PNG under their caption (see caption_for),
  creating parent dirs."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(_with_caption(pixels, caption_for(path, caption))).save(path, format='PNG')


def save_image_grid(path, images: np.ndarray, ncols: int | None = None,
                    caption: str | None = None) -> None:
  """Saves image_grid(images (N, H, W, C), ncols) as a captioned PNG, grey if C=1 else RGB;
  images smaller than MIN_TILE pixels are enlarged by a whole factor first.

  Parent directories are created.
  """
  images = np.asarray(images)
  if images.ndim == 4:
    factor = enlargement(min(images.shape[1:3]))
    images = np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)
  grid = image_grid(images, ncols)
  _save_png(path, grid[..., 0] if grid.shape[-1] == 1 else grid, caption)


def _heat_map(density: np.ndarray, size: int) -> np.ndarray:
  """RGB uint8 (size, size, 3) of density (H, W) [y, x]; peak darkest, y up."""
  density = np.asarray(density, np.float64)
  if density.ndim != 2 or not np.all(np.isfinite(density)):
    raise EgmError(
        f'background_density must be a finite 2-D array indexed [y, x], as '
        f'returned by histogram_density or density_from_energy, but got '
        f'shape {density.shape}. Pass one density grid, not a batch.')
  peak = density.max()
  level = density / peak if peak > 0 else np.zeros_like(density)
  level = np.clip(level, 0.0, 1.0)[::-1, :, None]  # Row 0 = top = +extent.
  rgb = (1.0 - level) * _LOW_COLOUR + level * _HIGH_COLOUR
  image = Image.fromarray(np.round(rgb).astype(np.uint8))
  return np.asarray(image.resize((size, size), Image.NEAREST)).copy()


def save_points_png(path, points: np.ndarray, extent: float, size: int = 256,
                    background_density: np.ndarray | None = None,
                    caption: str | None = None) -> None:
  """Saves a size x size RGB PNG of points (n, 2) in [-extent, extent]^2, y up.

  background_density (H, W), indexed [y, x] over the same square, is drawn as
  a heat map under the points; points outside the square are not drawn.
  """
  points = np.asarray(points, np.float64)
  if points.ndim != 2 or points.shape[1] != 2:
    raise EgmError(
        f'save_points_png expects 2-D points with shape (n, 2), but got shape '
        f'{points.shape}. Pass one (x, y) pair per row.')
  if extent <= 0 or size < 1:
    raise EgmError(
        f'save_points_png needs extent > 0 and size >= 1, got extent={extent} '
        f'and size={size}.')
  if background_density is None:
    canvas = np.full((size, size, 3), 255, np.uint8)
  else:
    canvas = _heat_map(background_density, size)
  points = points[np.all(np.isfinite(points), axis=1)]
  scale = size / (2.0 * extent)
  cols = np.floor((points[:, 0] + extent) * scale).astype(np.int64)
  rows = np.floor((extent - points[:, 1]) * scale).astype(np.int64)
  inside = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
  rows, cols = rows[inside], cols[inside]
  for dr in range(_DOT):
    for dc in range(_DOT):
      canvas[np.minimum(rows + dr, size - 1),
             np.minimum(cols + dc, size - 1)] = _POINT_COLOUR
  _save_png(path, canvas, caption)
