"""The PyTorch updates of benchmarks/torch_method_steps.py: one step on a tiny batch gives
finite losses of the magnitude of egm's at init on the same batch (skipped without torch)."""
import jax
import numpy as np
import pytest

from benchmarks import torch_updates, training
from egm.methods import DataSpec, make_method
from egm.run import experiment

torch = pytest.importorskip('torch')

# Benchmark support, not library behaviour: twelve eager PyTorch updates and egm inits.
pytestmark = pytest.mark.integration
from benchmarks import torch_method_steps  # pylint: disable=wrong-import-position

# The loss each method reports in both implementations, compared at init (None: finite only;
# the EBMs' energy difference is ~0 at init).
SHARED_LOSS = {'triangle': 'rec', 'vae': 'rec', 'ebm': None, 'coopnets': 'generator_loss',
               'abp': 'loss', 'srinf': 'loss'}


@pytest.mark.parametrize('case', sorted(SHARED_LOSS))
@pytest.mark.parametrize('channels_last', [False, True])
def test_torch_update_runs_with_losses_like_egm(case, channels_last):
  path, arg = torch_updates.CASES[case]
  config = training.load_config(path, ','.join(a for a in ('smoke', arg) if a))
  config.train.batch_size = 4
  shape = training.example_shape(config)
  batch = training.synthetic_batch(shape, 4)
  x = torch.from_numpy(np.array(batch['x'].transpose(0, 3, 1, 2)))
  losses = {k: float(v) for k, v in torch_method_steps.make(config, x, channels_last)().items()}
  assert losses and all(np.isfinite(v) for v in losses.values()), losses
  name = SHARED_LOSS[case]
  if name is None:
    return
  method = make_method(config, DataSpec.of(shape, 40, 4))
  keys = experiment.run_keys(config.seed)
  state = method.init(keys['init'], batch)
  metrics = jax.jit(method.update)(state, batch, keys['train'])[1]
  egm_loss = float(metrics[name])
  assert 1 / 3 < losses[name] / egm_loss < 3, (losses[name], egm_loss)
