"""Deterministic, resumable batches from an in-memory ArraySource.

Global batch `step` depends only on (seed, step): epoch e = step //
steps_per_epoch shuffles with `np.random.default_rng([seed, e])`, and
steps_per_epoch = N // global_batch_size (each epoch's remainder is
dropped). Starting at `start_step` therefore yields exactly the batches a run
from step 0 would have reached, and each process reads only its own rows.
Evaluation batches visit a seeded uniform sample of the split (never its
first rows, which may all belong to a few classes).
"""
import itertools
import queue
import threading
from typing import Iterator

import numpy as np

from egm.data.dataset import SUBSET_SEED, ArraySource, sample_indices
from egm.data.masks import example_masks, parse_mask
from egm.errors import EgmError

_NOISE_STREAM = 1  # keeps noise generators apart from the permutations
_END = object()


def train_batches(source: ArraySource, *, global_batch_size: int, seed: int,
                  start_step: int = 0, process_index: int = 0,
                  process_count: int = 1, mask: str = 'none',
                  dequantize: float = 0.0,
                  prefetch: int = 2) -> Iterator[dict[str, np.ndarray]]:
  """Yields this process's part of global batches start_step, start_step+1, ...

  Process p of P gets rows [p*B/P, (p+1)*B/P) of each global batch of B.

  Args:
    source: the training split.
    global_batch_size: B, summed over processes; must divide by P.
    seed: fixes the order, the masks and the noise.
    start_step: first step to yield (resuming).
    process_index: p, this process.
    process_count: P.
    mask: 'none', 'pixels:<fraction>' or 'block:<side>' (see masks.py).
    dequantize: std of Gaussian noise added to x; the noise of a row depends
      on (seed, step, row in the global batch) only.
    prefetch: batches prepared ahead on a background thread (0: none).

  Yields:
    {'x': float32 (B/P, ...), 'index': int32 (B/P,) rows of `source`,
    'label': int32 (B/P,) if the source has labels, 'mask': float32
    (B/P, H, W, 1), 1 = observed, if mask != 'none'}.
  """
  _check_processes(global_batch_size, process_index, process_count)
  if global_batch_size > len(source):
    raise EgmError(
        f'The batch size {global_batch_size} is larger than the {len(source)} '
        'training examples. Lower --config.train.batch_size, or raise '
        '--config.data.max_examples (0 keeps every example).')
  if mask != 'none' and not source.is_image:
    raise EgmError(
        f'The mask {mask!r} needs image data, but this source holds points. '
        'Set --config.data.mask=none.')
  mask_fn = None if mask == 'none' else parse_mask(mask, *source.x.shape[1:3])
  rows = _rows(global_batch_size, process_index, process_count)
  batches = _train_stream(source, global_batch_size, seed, start_step, rows,
                          mask_fn, dequantize)
  return _Prefetch(batches, prefetch) if prefetch > 0 else batches


def _train_stream(source, batch_size, seed, start_step, rows, mask_fn,
                  dequantize):
  steps_per_epoch = len(source) // batch_size
  epoch, order = None, None
  for step in itertools.count(start_step):
    step_epoch, position = divmod(step, steps_per_epoch)
    if step_epoch != epoch:
      epoch = step_epoch
      order = np.random.default_rng([seed, epoch]).permutation(len(source))
    indices = order[position * batch_size:(position + 1) * batch_size][rows]
    batch = source.get(indices)
    batch['index'] = indices.astype(np.int32)
    if mask_fn is not None:
      batch['mask'] = example_masks(mask_fn, seed, indices)
    if dequantize:
      batch['x'] += dequantize * np.stack([
          np.random.default_rng([seed, step, row, _NOISE_STREAM])
          .standard_normal(batch['x'].shape[1:], np.float32)
          for row in range(rows.start, rows.stop)])
    yield batch


def eval_batches(source: ArraySource, *, batch_size: int,
                 max_examples: int = 0, process_index: int = 0,
                 process_count: int = 1,
                 seed: int = SUBSET_SEED) -> Iterator[dict[str, np.ndarray]]:
  """Yields a seeded uniform sample of `max_examples` (0: all) examples, once.

  The examples come in the order of `sample_indices(len(source), n, seed)`,
  a seeded permutation, so any first rows are a uniform sample too, and the
  sample of n examples starts with the sample of fewer. Global batches hold
  `batch_size` examples, the last one possibly fewer; process p gets the
  p-th contiguous part of each (parts of the last batch differ in size by
  at most one). Every process yields the same number of batches.

  Yields:
    {'x': float32 (b, ...), 'index': int32 (b,) rows of `source`, 'label':
    int32 (b,) if the source has labels}.
  """
  _check_processes(batch_size, process_index, process_count)
  n = len(source) if max_examples <= 0 else min(max_examples, len(source))
  order = sample_indices(len(source), n, seed)
  return _eval_stream(source, batch_size, order, process_index, process_count)


def _eval_stream(source, batch_size, order, process_index, process_count):
  for start in range(0, len(order), batch_size):
    indices = np.array_split(order[start:start + batch_size],
                             process_count)[process_index]
    batch = source.get(indices)
    batch['index'] = indices.astype(np.int32)
    yield batch


def _check_processes(batch_size: int, process_index: int,
                     process_count: int) -> None:
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} is not in '
                     f'[0, process_count={process_count}).')
  if batch_size < 1 or batch_size % process_count:
    raise EgmError(
        f'The batch size {batch_size} must be a positive multiple of the '
        f'{process_count} processes, since each process reads an equal part. '
        f'Set the batch size to a multiple of {process_count}.')


def _rows(batch_size: int, process_index: int, process_count: int) -> slice:
  """The rows of a global batch that belong to one process."""
  per_process = batch_size // process_count
  return slice(process_index * per_process, (process_index + 1) * per_process)


class _Prefetch:
  """Iterates `items` on a background thread, up to `size` items ahead.

  Dropping or closing the iterator stops the thread.
  """

  def __init__(self, items: Iterator, size: int):
    self._queue = queue.Queue(size)
    self._stop = threading.Event()
    self._done = False
    threading.Thread(target=_produce, args=(items, self._queue, self._stop),
                     daemon=True).start()

  def __iter__(self):
    return self

  def __next__(self):
    if self._done:
      raise StopIteration
    item, error = self._queue.get()
    if error is not None or item is _END:
      self.close()
      if error is not None:
        raise error
      raise StopIteration
    return item

  def close(self) -> None:
    self._done = True
    self._stop.set()

  __del__ = close


def _produce(items: Iterator, out: queue.Queue, stop: threading.Event):
  """Puts (item, None) per item, then (_END, None), or (None, error)."""
  def put(entry) -> bool:
    while not stop.is_set():
      try:
        out.put(entry, timeout=0.1)
        return True
      except queue.Full:
        pass
    return False

  try:
    for item in items:
      if not put((item, None)):
        return
    put((_END, None))
  except Exception as e:  # pylint: disable=broad-except  (re-raised later)
    put((None, e))
