"""The entry points: user mistakes print one paragraph (no traceback) and exit with status 2."""
import os
import signal
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
  _assert_clear_error(code, err, 'Unknown config key', "Did you mean 'batch_size'?",
                      '--print_config')
  assert '?.' not in err


def test_print_config_lists_every_key_and_exits(tmp_path):
  result = subprocess.run([sys.executable, os.path.join(REPO, 'train.py'), '--config',
                           'triangle_toy2d:smoke,model.width=24', '--workdir', str(tmp_path / 'r'),
                           '--print_config'], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr
  assert 'width: 24' in result.stdout and 'batch_size: 16' in result.stdout
  assert not os.path.exists(tmp_path / 'r')  # nothing written


@pytest.mark.parametrize('args, phrases', [
    (['--config', 'configs/no_such.py'], ['does not exist', 'triangle_digits']),
    (['--config', 'no_such_name'], ['does not exist', 'triangle_cifar']),
])
def test_missing_config_file_is_one_paragraph(tmp_path, args, phrases):
  code, err = _run('train.py', *args, '--workdir', str(tmp_path / 'run'))
  _assert_clear_error(code, err, *phrases)
  assert len(err.strip().splitlines()) == 1 and not os.path.exists(tmp_path / 'run')


def test_workdir_that_is_a_file(tmp_path):
  (tmp_path / 'file').write_text('')
  for script in ('train.py', 'eval.py'):
    code, err = _run(script, '--config', 'configs/triangle_toy2d.py:smoke',
                     '--workdir', str(tmp_path / 'file'))
    _assert_clear_error(code, err, 'is a file, not a directory')


def test_configs_load_from_another_directory_by_path_and_by_name(tmp_path):
  for config in (os.path.join(REPO, 'configs', 'coopnets_fashion.py'), 'coopnets_fashion'):
    result = subprocess.run([sys.executable, os.path.join(REPO, 'train.py'), '--config', config,
                             '--workdir', str(tmp_path / 'r'), '--print_config'], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and 'method: coopnets' in result.stdout, result.stderr


def test_unknown_config_argument(tmp_path):
  code, err = _run('train.py', '--config', 'configs/triangle_toy2d.py:smokey',
                   '--workdir', str(tmp_path))
  _assert_clear_error(code, err, "Unknown config argument 'smokey'", ':smoke')


@pytest.mark.parametrize('source, phrases', [
    ('tfds:cifar10', ['not prepared', 'folder:../shared/data/cifar10_jpeg.tar.gz']),
    ('flickr:cats', ['Unknown data source', 'toy2d:']),
])
def test_data_errors(tmp_path, source, phrases):
  code, err = _run('train.py', '--config', 'configs/triangle_cifar.py:smoke',
                   '--workdir', str(tmp_path / 'run'), f'--config.data.source={source}',
                   f'--config.data.data_dir={tmp_path / "tfds"}')
  _assert_clear_error(code, err, *phrases)
  assert not os.path.exists(tmp_path / 'run')  # a refused run leaves no empty workdir
  if source.startswith('tfds'):
    assert str(tmp_path / 'tfds') in err


def test_eval_without_a_run(tmp_path):
  run = str(tmp_path / 'run')
  code, err = _run('eval.py', '--config', 'configs/triangle_toy2d.py:smoke', '--workdir', run)
  _assert_clear_error(code, err, 'does not exist', 'python train.py')
  assert not os.path.exists(run)  # nothing left behind
  os.makedirs(run)
  code, err = _run('eval.py', '--config', 'configs/triangle_toy2d.py:smoke', '--workdir', run)
  _assert_clear_error(code, err, 'No checkpoint', 'python train.py')
  code, err = _run('eval.py', '--workdir', run)
  _assert_clear_error(code, err, 'no config.json', '--config')


def test_help_exits_0_with_the_overrides_and_print_config_needs_no_workdir():
  for script in ('train.py', 'eval.py'):
    result = subprocess.run([sys.executable, script, '--help'], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert '--workdir' in result.stdout and '--config.<key>=<value>' in result.stdout
  result = subprocess.run([sys.executable, 'train.py', '--config', 'triangle_toy2d:smoke',
                           '--print_config'], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0 and 'batch_size: 16' in result.stdout, result.stderr


def test_eval_reads_the_runs_own_config(tmp_path):
  """A run trained on another data source is evaluated on it without repeating the override."""
  workdir = str(tmp_path / 'run')
  code, err = _run('train.py', '--config', 'configs/triangle_cifar.py:smoke', '--workdir', workdir,
                   '--config.data.source=sklearn:digits', '--config.data.image_size=8',
                   '--config.data.channels=1')
  assert code == 0, err
  result = subprocess.run(
      [sys.executable, 'eval.py', '--config', 'configs/triangle_cifar.py:smoke', '--workdir',
       workdir, '--config.eval.metrics=samples'], cwd=REPO, capture_output=True, text=True,
      timeout=300)
  assert result.returncode == 0, result.stderr
  assert '"dataset": "digits"' in result.stdout and 'samples.png' in result.stdout
  assert "evaluating with the run's own config" in result.stdout


def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path):
  """SIGTERM mid-run: the trainer checkpoints the current step and exits 0; rerunning resumes."""
  args = [sys.executable, 'train.py', '--config', 'configs/triangle_toy2d.py:smoke',
          '--workdir', str(tmp_path), '--config.train.num_steps=100000',
          '--config.train.checkpoint_every=100000', '--config.train.log_every=1']
  proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
  for line in proc.stdout:
    if line.startswith('step 3/'):
      break
  proc.send_signal(signal.SIGTERM)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == 0, out
  saved = [int(d) for d in os.listdir(tmp_path / 'checkpoints') if d.isdigit()]
  assert len(saved) == 1 and saved[0] >= 3, saved
  code, err = _run(*args[1:-3], f'--config.train.num_steps={saved[0] + 2}')
  assert code == 0, err
  assert sorted(int(d) for d in os.listdir(tmp_path / 'checkpoints') if d.isdigit())[-1] == saved[0] + 2
