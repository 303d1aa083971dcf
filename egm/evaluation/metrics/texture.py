"""Texture synthesis (data from the `texture:` source, methods with `synthesize`).

`texture`: `eval.texture_syntheses` textures of `eval.synthesis_size` pixels a side
(larger than the training crops) are synthesised and compared with the exemplar's held-out
region (its right quarter, never trained on: the model learns from crops of the left 3/4)
by `texture_stats.texture_distance` (mean TV between filter-bank response histograms, 0 =
same statistics): `texture_distance_synthesis` (the model's samples),
`texture_distance_generator` (the generator's proposals, before revision),
`texture_distance_training_region` (the training region itself: what copying the training
pixels scores, the reference a synthesis should approach) and `texture_distance_unrelated`
(another texture, named in `texture_unrelated`). Scoring against the held-out region, a
model that memorises its training crops gains nothing over one that learns the statistics.
`texture.png`: the exemplar, then the syntheses.
"""
import os

import jax
import numpy as np

from egm.data import texture
from egm.data.dataset import LoadOptions
from egm.evaluation import texture_stats
from egm.evaluation.registry import register_metric
from egm.figures import images

UNRELATED = {'brick': 'grass', 'grass': 'brick', 'gravel': 'brick', 'hubble': 'gravel'}


def _to_unit(image_uint8: np.ndarray) -> np.ndarray:
  return image_uint8.astype(np.float64) / 127.5 - 1.0


def _side_by_side(panels: list[np.ndarray]) -> np.ndarray:
  """uint8 panels (H_i, W_i, C) on one mid-grey canvas, top-aligned, 4 px apart."""
  height = max(p.shape[0] for p in panels)
  width = sum(p.shape[1] for p in panels) + 4 * (len(panels) - 1)
  canvas = np.full((height, width, panels[0].shape[2]), 128, np.uint8)
  left = 0
  for panel in panels:
    canvas[:panel.shape[0], left:left + panel.shape[1]] = panel
    left += panel.shape[1] + 4
  return canvas


@register_metric('texture', methods=('synthesize',), kind='image')
def texture_synthesis(ctx) -> dict:
  exemplar = ctx.dataset.exemplar
  if exemplar is None:
    return {}
  cfg, data_cfg = ctx.config.eval, ctx.config.data
  width = exemplar.shape[1]
  training_region = _to_unit(exemplar[:, :width - width // 4])
  reference = _to_unit(exemplar[:, width - width // 4:])  # held out
  key = jax.random.fold_in(ctx.key, 99)
  synthesize = jax.jit(ctx.method.synthesize, static_argnums=(2, 3))
  generate = jax.jit(ctx.method.generator_sample, static_argnums=(2, 3))
  n, side = cfg.texture_syntheses, cfg.synthesis_size
  synthesis = np.clip(np.asarray(synthesize(ctx.state, key, n, side)), -1, 1)
  proposals = np.clip(np.asarray(generate(ctx.state, key, n, side)), -1, 1)
  name = ctx.dataset.name.removeprefix('texture_')
  unrelated_name = UNRELATED.get(name, 'brick')
  options = LoadOptions(channels=data_cfg.channels, texture_size=data_cfg.texture_size)
  unrelated = _to_unit(texture.exemplar_image(unrelated_name, options))
  distance = texture_stats.texture_distance
  to_uint8 = lambda x: np.round((np.clip(x, -1, 1) + 1) * 127.5).astype(np.uint8)
  images.save_image_grid(os.path.join(ctx.out_dir, 'texture.png'), _side_by_side(
      [exemplar] + [to_uint8(s) for s in synthesis[:3]])[None].astype(np.float32) / 127.5 - 1)
  return {
      'texture_distance_synthesis': float(np.mean([distance(s, reference) for s in synthesis])),
      'texture_distance_generator': float(np.mean([distance(p, reference) for p in proposals])),
      'texture_distance_training_region': distance(training_region, reference),
      'texture_distance_unrelated': distance(unrelated, reference),
      'texture_unrelated': unrelated_name,
  }
