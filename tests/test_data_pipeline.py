"""Tests of egm.data's batch pipeline: deterministic, resumable, per-process, masked."""
import numpy as np
import pytest

from egm import data
from egm.data import pipeline
from egm.errors import EgmError


def _images(n=50):
  rng = np.random.default_rng(0)
  return data.ArraySource(rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8),
                          np.arange(n, dtype=np.int32))


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def test_train_batches_resume_is_exact():
  source = _images()
  kwargs = dict(global_batch_size=8, seed=3, mask='pixels:0.5',
                dequantize=0.05)
  full = _take(data.train_batches(source, **kwargs), 15)
  resumed = _take(data.train_batches(source, start_step=5, prefetch=0,
                                     **kwargs), 10)
  for a, b in zip(full[5:], resumed):
    for key in ('x', 'label', 'index', 'mask'):
      np.testing.assert_array_equal(a[key], b[key])
  # 50 // 8 = 6 steps per epoch: steps 0..5 see 48 distinct examples.
  epoch = np.concatenate([b['label'] for b in full[:6]])
  assert len(np.unique(epoch)) == 48
  assert not np.array_equal(full[0]['label'], full[6]['label'])


def test_train_batches_process_slices():
  source = _images()
  kwargs = dict(global_batch_size=8, seed=1, mask='block:3', dequantize=0.1)
  whole = _take(data.train_batches(source, **kwargs), 8)
  parts = [_take(data.train_batches(source, process_index=p, process_count=4,
                                    **kwargs), 8) for p in range(4)]
  for step in range(8):
    for key in ('x', 'label', 'mask'):
      joined = np.concatenate([parts[p][step][key] for p in range(4)])
      np.testing.assert_array_equal(joined, whole[step][key])
  labels = np.concatenate([parts[p][0]['label'] for p in range(4)])
  assert len(np.unique(labels)) == 8  # disjoint parts


def test_masks_depend_on_the_example_only():
  source = _images(20)
  batches = _take(data.train_batches(source, global_batch_size=10, seed=0,
                                     mask='block:3'), 6)
  seen = {}
  for batch in batches:
    for label, mask in zip(batch['label'], batch['mask']):
      assert mask.shape == (8, 8, 1) and mask.sum() == 64 - 9
      if label in seen:
        np.testing.assert_array_equal(seen[label], mask)
      seen[label] = mask
  other = next(data.train_batches(source, global_batch_size=20, seed=0,
                                  mask='pixels:0.3'))
  assert 0.6 < other['mask'].mean() < 0.8


def test_train_batches_errors():
  source = _images(10)
  with pytest.raises(EgmError, match='Lower --config.train.batch_size'):
    data.train_batches(source, global_batch_size=11, seed=0)
  with pytest.raises(EgmError, match='multiple of the 3 processes'):
    data.train_batches(source, global_batch_size=8, seed=0, process_count=3)
  with pytest.raises(EgmError, match='pixels:<fraction'):
    data.train_batches(source, global_batch_size=8, seed=0, mask='holes:2')
  with pytest.raises(EgmError, match='from 1 to 8'):
    data.train_batches(source, global_batch_size=8, seed=0, mask='block:9')


def test_prefetch_passes_errors_on_and_stops():
  def failing():
    yield 1
    raise RuntimeError('boom')

  iterator = pipeline._Prefetch(failing(), 2)
  assert next(iterator) == 1
  with pytest.raises(RuntimeError, match='boom'):
    next(iterator)
  with pytest.raises(StopIteration):
    next(iterator)


def test_eval_batches():
  source = _images(23)
  batches = list(data.eval_batches(source, batch_size=10))
  assert [len(b['x']) for b in batches] == [10, 10, 3]
  labels = np.concatenate([b['label'] for b in batches])
  np.testing.assert_array_equal(np.sort(labels), np.arange(23))  # each once
  assert not np.array_equal(labels, np.arange(23))  # in a seeded order
  for batch in batches:
    assert batch['index'].dtype == np.int32
    np.testing.assert_array_equal(batch['label'], batch['index'])
    np.testing.assert_array_equal(source.get(batch['index'])['x'], batch['x'])
  limited = list(data.eval_batches(source, batch_size=4, max_examples=6))
  assert [len(b['x']) for b in limited] == [4, 2]
  np.testing.assert_array_equal(  # the sample of 6 starts the full order
      np.concatenate([b['index'] for b in limited]), labels[:6])
  parts = [list(data.eval_batches(source, batch_size=10, process_index=p,
                                  process_count=2)) for p in range(2)]
  assert len(parts[0]) == len(parts[1]) == 3
  for step in range(3):
    for key in ('x', 'index'):
      np.testing.assert_array_equal(
          np.concatenate([parts[0][step][key], parts[1][step][key]]),
          batches[step][key])


def _class_ordered(per_class=100, classes=10):
  """Images whose labels run 0..classes-1 in blocks, as in a class-ordered archive."""
  n = per_class * classes
  rng = np.random.default_rng(0)
  return data.ArraySource(rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8),
                          np.repeat(np.arange(classes, dtype=np.int32), per_class))


def assert_classes_uniform(labels, classes=10):
  """Each class holds between half and 1.5 times its share of `labels`."""
  shares = np.bincount(labels, minlength=classes) / len(labels)
  assert np.all((shares > 0.5 / classes) & (shares < 1.5 / classes)), shares


def test_eval_batches_sample_is_uniform_and_seeded():
  source = _class_ordered()

  def indices(**kwargs):
    return np.concatenate([b['index'] for b in data.eval_batches(
        source, batch_size=64, max_examples=300, **kwargs)])

  first = indices()
  assert len(first) == len(np.unique(first)) == 300
  assert_classes_uniform(source.label[first])
  np.testing.assert_array_equal(indices(), first)
  np.testing.assert_array_equal(indices(seed=0), first)
  assert not np.array_equal(np.sort(indices(seed=1)), np.sort(first))
  with pytest.raises(AssertionError):  # the check fails for the first rows
    assert_classes_uniform(source.label[:300])


def test_train_batches_carry_the_source_rows():
  source = _class_ordered(5)
  kwargs = dict(global_batch_size=8, seed=2, prefetch=0)
  for batch in _take(data.train_batches(source, **kwargs), 10):
    assert batch['index'].dtype == np.int32 and batch['index'].shape == (8,)
    np.testing.assert_array_equal(source.get(batch['index'])['x'], batch['x'])
    np.testing.assert_array_equal(source.label[batch['index']], batch['label'])
  noisy = next(data.train_batches(source, dequantize=0.1, **kwargs))
  clean = next(data.train_batches(source, **kwargs))
  np.testing.assert_array_equal(noisy['index'], clean['index'])
  parts = [next(data.train_batches(source, process_index=p, process_count=2,
                                   **kwargs)) for p in range(2)]
  np.testing.assert_array_equal(
      np.concatenate([p['index'] for p in parts]), clean['index'])


# ---------------------------------------------------------------- fashion_mnist
