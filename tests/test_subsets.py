"""Subsets of a split are seeded uniform samples, never its first rows (a class-ordered split)."""
import types

import jax
import numpy as np
import pytest

from configs.default import get_config
from egm import data
from egm.data.dataset import SUBSET_SEED, sample_indices
from egm.evaluation import feature_metrics as fm
from egm.evaluation.context import EvalContext
from egm.evaluation.metrics import completion, feature_space, figures
from egm.figures import images

CLASSES = 10


def _class_ordered(per_class=100):
  """Distinct 4x4 grey images (N = 10 * per_class) with labels 0..9 in blocks."""
  n = per_class * CLASSES
  x = np.zeros((n, 4, 4, 1), np.uint8)
  x[:, 0, 0, 0], x[:, 0, 1, 0] = np.arange(n) // 256, np.arange(n) % 256
  return data.ArraySource(x, np.repeat(np.arange(CLASSES, dtype=np.int32), per_class))


def _rows_of(source, images_):
  """The rows (M,) of `source` whose images are `images_` (M, 4, 4, 1) in [-1, 1]."""
  pixels = np.rint((np.asarray(images_) + 1) * 127.5).astype(int)
  return pixels[:, 0, 0, 0] * 256 + pixels[:, 0, 1, 0]


def _assert_classes_uniform(labels, low=0.5, high=1.5):
  """Each class holds between `low` and `high` times its share of `labels`."""
  shares = np.bincount(labels, minlength=CLASSES) / len(labels)
  assert np.all((shares > low / CLASSES) & (shares < high / CLASSES)), shares


def _context(source, tmp_path, method=None, **eval_overrides):
  config = get_config('smoke')
  for key, value in eval_overrides.items():
    config.eval[key] = value
  dataset = data.Dataset(name='ordered', kind='image', train=source, test=source,
                         num_classes=CLASSES)
  exp = types.SimpleNamespace(config=config, dataset=dataset, method=method)
  return EvalContext(exp=exp, state=None, out_dir=str(tmp_path), key=jax.random.PRNGKey(0))


def test_sample_indices_are_seeded_nested_and_without_replacement():
  first = sample_indices(1000, 300)
  assert len(np.unique(first)) == 300 and first.min() >= 0 and first.max() < 1000
  np.testing.assert_array_equal(sample_indices(1000, 300, SUBSET_SEED), first)
  np.testing.assert_array_equal(sample_indices(1000, 100), first[:100])
  assert not np.array_equal(np.sort(sample_indices(1000, 300, seed=1)), np.sort(first))
  np.testing.assert_array_equal(np.sort(sample_indices(50, 80)), np.arange(50))
  _assert_classes_uniform(np.repeat(np.arange(CLASSES), 100)[first])
  with pytest.raises(AssertionError):  # the check fails for the first rows
    _assert_classes_uniform(np.repeat(np.arange(CLASSES), 100)[:300])


def test_array_source_subset():
  source = _class_ordered()
  subset = source.subset(300)
  rows = _rows_of(source, subset.get(np.arange(300))['x'])
  assert np.all(np.diff(rows) > 0)
  np.testing.assert_array_equal(subset.label, source.label[rows])
  _assert_classes_uniform(subset.label)
  np.testing.assert_array_equal(source.subset(300).x, subset.x)
  assert not np.array_equal(source.subset(300, seed=5).x, subset.x)
  assert len(source.subset(5000)) == len(source)


def test_fid_reference_images_are_a_uniform_sample(tmp_path):
  source = _class_ordered()
  ctx = _context(source, tmp_path, batch_size=64)
  batches = list(feature_space._real_batches(ctx, 300))
  rows = np.concatenate([b['index'] for b in batches])
  assert len(np.unique(rows)) == 300
  _assert_classes_uniform(source.label[rows])
  real = fm.extract_features(lambda x: x.reshape(len(x), -1), ctx.real_batches('train', 300),
                             300, progress=False)
  np.testing.assert_array_equal(_rows_of(source, real.reshape(-1, 4, 4, 1)), rows)
  again = np.concatenate([b['index'] for b in _context(source, tmp_path).real_batches(
      'train', max_examples=300)])
  np.testing.assert_array_equal(again, rows)
  assert 'uniform0' in fm.stats_cache_key('net', 'ordered', 'train', 300)


def test_figures_and_completion_use_uniform_samples(tmp_path, monkeypatch):
  source = _class_ordered()
  grids = {}
  monkeypatch.setattr(images, 'save_image_grid',
                      lambda path, grid, **kwargs: grids.__setitem__(path, np.asarray(grid)))
  method = types.SimpleNamespace(
      capabilities=frozenset({'infer', 'generate', 'complete'}),
      encode=lambda state, x: x.reshape(len(x), -1),
      infer=lambda state, x, key: x.reshape(len(x), -1),
      generate=lambda state, z: z.reshape(len(z), 4, 4, 1),
      complete=lambda state, x, mask, key: x)
  ctx = _context(source, tmp_path, method, completion_examples=300,
                 completion_mask='block:2', batch_size=64)

  figures.interpolations(ctx)
  grid = next(g for p, g in grids.items() if p.endswith('interpolations.png'))
  ends = grid.reshape(8, -1, 4, 4, 1)[:, [0, -1]].reshape(-1, 4, 4, 1)
  assert len(np.unique(source.label[_rows_of(source, ends)])) >= 5  # first 16: one class

  searched = []
  monkeypatch.setattr(figures, '_save_neighbours',
                      lambda path, samples, train, *args: searched.append(train))
  ctx.sample_batches = lambda seed, n: iter([source.get(np.arange(n))['x']])
  figures.neighbours(ctx)
  rows = _rows_of(source, searched[0])
  assert len(np.unique(rows)) == ctx.config.eval.max_neighbour_examples
  _assert_classes_uniform(source.label[rows])

  results = completion.completion(ctx)
  assert results['completion_examples'] == 300
  shown = next(g for p, g in grids.items() if p.endswith('completion.png'))
  originals = shown[2 * len(shown) // 3:]
  assert len(np.unique(source.label[_rows_of(source, originals)])) >= 5


def test_completion_without_complete_fills_with_the_masked_reconstruction(tmp_path):
  """A method with only `reconstruct` is scored on its reconstruction of the hidden pixels."""
  source = _class_ordered()
  # Returns what it is given: were the hidden pixels given, the fill would be exact (mse 0).
  reconstruct = lambda state, batch, key: batch['x']
  method = types.SimpleNamespace(capabilities=frozenset({'reconstruct'}), reconstruct=reconstruct)
  ctx = _context(source, tmp_path, method, completion_examples=100, completion_mask='block:2',
                 batch_size=50)
  results = completion.completion(ctx)
  x = source.get(np.arange(len(source)))['x']
  assert 0.5 * np.mean(x ** 2) < results['completion_mse'] < 2 * np.mean(x ** 2)
  np.testing.assert_allclose(results['completion_psnr'],
                             10 * np.log10(4 / results['completion_mse']))
