"""Training phases on the step axis: where each starts, which one a step is in, its data.

A method declares its phases (`Method.phases`, each a `Phase`); phase i covers steps
[start_i, start_i + num_steps_i), the last one runs to `train.num_steps`. Each phase
has its own global batch and image size, and its batches count from the phase start
(the data order of a phase is that of a run starting there), so a run resumed mid-phase
reads exactly the batches an uninterrupted run reads.
"""
import dataclasses

import numpy as np

from egm.errors import EgmError
from egm.methods.contract import Phase, phase_start


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Resolved phases: `phases[i]` starts at `starts[i]` with batch `batch_sizes[i]`."""
  phases: tuple[Phase, ...]
  starts: tuple[int, ...]
  batch_sizes: tuple[int, ...]
  image_sizes: tuple[int, ...]

  def index(self, step: int) -> int:
    """The phase of the update that takes the state from `step` to `step + 1`."""
    return int(np.searchsorted(np.asarray(self.starts), step, side='right') - 1)


def schedule(phases, num_steps: int, batch_size: int, image_size: int) -> Schedule:
  """Resolves `phases` for a run of `num_steps` with the config's batch and image size."""
  if not phases:
    raise EgmError('A method declared no training phases; it must declare at least one.')
  for phase in phases[:-1]:
    if phase.num_steps is None:
      raise EgmError(f'Phase {phase.name!r} has no num_steps, but only the last phase may run '
                     'to train.num_steps.')
  starts = [phase_start(phases, i) for i in range(len(phases))]
  sizes = tuple(p.image_size or image_size for p in phases)
  for phase, size in zip(phases, sizes):
    if image_size % size:
      raise EgmError(f'Phase {phase.name!r} trains at {size}x{size} pixels, which does not '
                     f'divide data.image_size={image_size}: set --config.data.image_size to a '
                     'multiple of every phase size.')
  return Schedule(tuple(phases), tuple(starts),
                  tuple(p.batch_size or batch_size for p in phases), sizes)


def downsample(batch: dict, size: int) -> dict:
  """`batch` with images 'x' (B, S, S, C) and 'mask' box-averaged to size x size."""
  x = batch['x']
  if x.ndim != 4 or x.shape[1] == size:
    return batch
  factor = x.shape[1] // size
  out = dict(batch)
  for name in ('x', 'mask'):
    if name in batch:
      a = batch[name]
      out[name] = a.reshape(a.shape[0], size, factor, size, factor, a.shape[-1]).mean((2, 4))
  return out
