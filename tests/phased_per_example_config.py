"""A config for `phased_row_means`: the `row_means` test method (per-example running means,
tests/platform_methods.py) trained in two phases with different batch sizes, whose transition
rescales the per-example counts and jitters the parameter with the phase key."""
import os
import sys

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import platform_methods  # noqa: E402  (registers row_means)
from configs import default  # noqa: E402
from egm.methods import Phase, register  # noqa: E402

FIRST_PHASE_STEPS = 60


@register('phased_row_means')
class PhasedRowMeans(platform_methods.RowMeans):
  """`row_means` in a batch-8 phase of FIRST_PHASE_STEPS steps, then a batch-16 phase."""

  def phases(self, num_steps):
    del num_steps
    return (Phase('first', num_steps=FIRST_PHASE_STEPS, batch_size=8),
            Phase('second', batch_size=16))

  def enter_phase(self, state, phase_index, key):
    del phase_index
    params = state['model']['params']
    model = dict(state['model'], params=params + 0.1 * jax.random.normal(key, params.shape))
    per_example = dict(state['per_example'], count=0.5 * state['per_example']['count'])
    return dict(state, model=model, per_example=per_example)


def get_config(arg=None):
  config = default.get_config()
  config.method = 'phased_row_means'
  config.data.source = 'toy2d:8gaussians'
  config.data.max_examples = 40
  config.data.dequantize = 0.1
  config.train.batch_size = 8
  config.train.num_steps = FIRST_PHASE_STEPS + 10
  config.train.log_every = 10
  config.train.checkpoint_every = 100_000
  config.train.sample_every = 100_000
  return default.finish(config, arg)
