"""The entry points: user mistakes print one paragraph (no traceback) and exit with status 2."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
  result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
  return result.returncode, result.stderr


def _assert_clear_error(code, stderr, *phrases):
  assert code == 2, stderr
  assert 'Traceback' not in stderr, stderr
  for phrase in phrases:
    assert phrase in stderr, stderr


def test_unknown_config_key(tmp_path):
  code, err = _run('train.py', '--config', 'configs/triangle_toy2d.py:smoke',
                   '--workdir', str(tmp_path), '--config.train.batchsize=3')
  _assert_clear_error(code, err, 'Unknown config key', 'batch_size', 'configs/default.py')


def test_unknown_config_argument(tmp_path):
  code, err = _run('train.py', '--config', 'configs/triangle_toy2d.py:smokey',
                   '--workdir', str(tmp_path))
  _assert_clear_error(code, err, "unknown config argument 'smokey'", ':smoke')


@pytest.mark.parametrize('source, phrases', [
    ('tfds:cifar10', ['not prepared', 'folder:../shared/data/cifar10_jpeg.tar.gz']),
    ('flickr:cats', ['Unknown data source', 'toy2d:']),
])
def test_data_errors(tmp_path, source, phrases):
  code, err = _run('train.py', '--config', 'configs/triangle_cifar.py:smoke',
                   '--workdir', str(tmp_path / 'run'), f'--config.data.source={source}',
                   f'--config.data.data_dir={tmp_path / "tfds"}')
  _assert_clear_error(code, err, *phrases)
  if source.startswith('tfds'):
    assert str(tmp_path / 'tfds') in err


def test_eval_without_checkpoint(tmp_path):
  code, err = _run('eval.py', '--config', 'configs/triangle_toy2d.py:smoke',
                   '--workdir', str(tmp_path))
  _assert_clear_error(code, err, 'No checkpoint', 'python train.py')
