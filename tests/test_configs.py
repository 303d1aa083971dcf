"""Every config in configs/ trains and evaluates in its :smoke form (tfds data replaced by a stand-in)."""
import glob
import importlib
import os

import numpy as np
import pytest

from egm.evaluation import evaluate
from egm.run import trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, 'configs', '*.py'))
                 if not p.endswith('default.py'))


@pytest.mark.parametrize('name', CONFIGS)
def test_smoke_config_trains_and_evaluates(name, tmp_path):
  config = importlib.import_module(f'configs.{name}').get_config('smoke')
  if config.data.source.startswith('tfds:'):  # not prepared offline: same-shaped random images
    shape = (64, config.data.image_size, config.data.image_size, config.data.channels)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / 'images.npz', x=rng.integers(0, 256, shape, np.uint8),
             label=rng.integers(0, 10, 64, np.int32))
    config.data.source = f'npz:{tmp_path / "images.npz"}'
  trainer.train(config, str(tmp_path / 'run'))
  results = evaluate.evaluate(config, str(tmp_path / 'run'))
  assert results['step'] == config.train.num_steps
  assert all(np.isfinite(v) for v in results.values() if isinstance(v, float))
