"""Line plots drawn with pillow alone: loss curves from `metrics.jsonl`."""
import json
import math
import os

import numpy as np
from PIL import Image, ImageDraw

from egm.errors import EgmError

_PANEL = (320, 180)  # width, height of one panel (pixels)
_MARGIN = 28
_LINE = (31, 119, 180)
_AXES = (90, 90, 90)
_SKIP = {'step', 'steps_per_sec', 'eta_s'}


def read_metrics_jsonl(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{name: (steps (n,), values (n,))} for every finite scalar logged in `path`."""
  if not os.path.exists(path):
    raise EgmError(f'{path} does not exist: loss curves need the metrics.jsonl that training '
                   'writes. Point --workdir at a training run.')
  series: dict[str, list] = {}
  with open(path) as f:
    for line in f:
      if not line.strip():
        continue
      record = json.loads(line)
      for name, value in record.items():
        if name not in _SKIP and isinstance(value, (int, float)) and math.isfinite(value):
          series.setdefault(name, []).append((record['step'], value))
  return {name: tuple(np.array(column, np.float64) for column in zip(*points))
          for name, points in series.items()}


def _panel(name: str, steps: np.ndarray, values: np.ndarray) -> Image.Image:
  """One white panel: the curve of `values` over `steps`, its name, the value range."""
  width, height = _PANEL
  image = Image.new('RGB', _PANEL, 'white')
  draw = ImageDraw.Draw(image)
  left, top, right, bottom = _MARGIN, 16, width - 8, height - _MARGIN
  draw.rectangle((left, top, right, bottom), outline=_AXES)
  low, high = float(values.min()), float(values.max())
  span_v = high - low or 1.0
  span_s = float(steps.max() - steps.min()) or 1.0
  xs = left + (steps - steps.min()) / span_s * (right - left)
  ys = bottom - (values - low) / span_v * (bottom - top)
  points = list(zip(xs.tolist(), ys.tolist()))
  if len(points) > 1:
    draw.line(points, fill=_LINE, width=2)
  else:
    draw.ellipse((xs[0] - 2, ys[0] - 2, xs[0] + 2, ys[0] + 2), fill=_LINE)
  draw.text((left, 2), name, fill='black')
  draw.text((right - 80, 2), f'last {values[-1]:.4g}', fill='black')
  draw.text((2, top), f'{high:.3g}', fill=_AXES)
  draw.text((2, bottom - 10), f'{low:.3g}', fill=_AXES)
  draw.text((left, bottom + 4), f'step {int(steps.min())}', fill=_AXES)
  draw.text((right - 70, bottom + 4), f'{int(steps.max())}', fill=_AXES)
  return image


def save_loss_curves(path: str, series: dict[str, tuple[np.ndarray, np.ndarray]],
                     ncols: int = 3) -> None:
  """A PNG with one panel per series {name: (steps, values)}, `ncols` panels per row."""
  if not series:
    raise EgmError('No finite scalar metrics to plot: metrics.jsonl holds no logged steps yet.')
  names = sorted(series)
  nrows = math.ceil(len(names) / ncols)
  canvas = Image.new('RGB', (ncols * _PANEL[0], nrows * _PANEL[1]), 'white')
  for k, name in enumerate(names):
    canvas.paste(_panel(name, *series[name]), ((k % ncols) * _PANEL[0], (k // ncols) * _PANEL[1]))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  canvas.save(path, format='PNG')
