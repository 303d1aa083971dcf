"""The troubleshooting table: bad inputs to train.py and a piece of the message each gets.

`CASES` run in tests/test_troubleshooting.py; `OTHER_ROWS` and `CHECKPOINT_ROWS` name the
tests that check them. `python -m tests.troubleshooting_cases` prints the table of docs/troubleshooting.md.
"""
import gzip
import os
import struct
from typing import Callable, NamedTuple

import numpy as np

TOY = 'configs/triangle_toy2d.py:smoke'
DIGITS = 'configs/triangle_digits.py:smoke'


class Case(NamedTuple):
  """A bad input: `args` are train.py's arguments ('{tmp}' is a fresh directory, which `make`
  fills first; `--workdir={tmp}/run` is added unless `workdir` is False or args give one);
  the message must contain `fragment`."""
  id: str
  area: str
  bad_input: str
  args: tuple
  fragment: str
  make: Callable | None = None
  workdir: bool = True


def _npz(**arrays):
  def make(tmp):
    np.savez(os.path.join(tmp, 'data.npz'), **arrays)
  return make


def _write(name, content: bytes):
  def make(tmp):
    path = os.path.join(tmp, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
      f.write(content)
  return make


def _idx(images: bytes, labels: bytes | None = None):
  def make(tmp):
    with gzip.open(os.path.join(tmp, 't10k-images-idx3-ubyte.gz'), 'wb') as f:
      f.write(images)
    if labels is not None:
      with gzip.open(os.path.join(tmp, 't10k-labels-idx1-ubyte.gz'), 'wb') as f:
        f.write(labels)
  return make


def _png_tree(*names):
  """Valid 6x6 PNGs at the given relative paths."""
  import PIL.Image

  def make(tmp):
    for name in names:
      path = os.path.join(tmp, 'images', name)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      PIL.Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(path)
  return make


_IDX_HEADER = b'\0\0\x08\x03' + struct.pack('>3i', 4, 6, 6)
_NPZ = ('--config.data.source=npz:{tmp}/data.npz',)
_POINTS = np.zeros((64, 2), np.float32)
_IMAGES = np.zeros((64, 8, 8), np.uint8)

CASES = [
    # ------------------------------------------------------------------------- config
    Case('unknown-override-key', 'config', 'a mistyped key in an override '
         '(`--config.train.batchsize=3`)', (TOY, '--config.train.batchsize=3'),
         'Unknown config key'),
    Case('unknown-argument-key', 'config', 'a mistyped key in the config argument '
         '(`:smoke,widht=3`)', (TOY + ',widht=3',), "names the unknown key 'widht'"),
    Case('ambiguous-argument-key', 'config', 'a config-argument key that ends two keys '
         '(`:batch_size=8`)', (TOY + ',batch_size=8',), 'is ambiguous'),
    Case('unknown-config-argument', 'config', 'an unknown config argument (`:smokey`)',
         ('configs/triangle_toy2d.py:smokey',), "Unknown config argument 'smokey'"),
    Case('override-wrong-type', 'config', 'a value of the wrong type in an override '
         '(`--config.optim.lr=abc`)', (TOY, '--config.optim.lr=abc'),
         'could not convert string to float'),
    Case('argument-wrong-type', 'config', 'a value of the wrong type in the config argument '
         '(`:width=abc`)', (TOY + ',width=abc',), "'abc' is not a int"),
    Case('file-wrong-type', 'config', 'a config file that sets a key to the wrong type',
         ('--config={tmp}/bad_type.py',), 'Could not override field',
         _write('bad_type.py', b'from configs import triangle_toy2d\n'
                b'def get_config(arg=None):\n  c = triangle_toy2d.get_config(arg)\n'
                b'  c.train.batch_size = "big"\n  return c\n')),
    Case('config-missing', 'config', 'a config file that does not exist',
         ('--config=configs/no_such.py',), 'does not exist'),
    Case('config-name-unknown', 'config', 'an unknown config name', ('--config=no_such_name',),
         "of the repository's configs: abp_cifar"),
    Case('config-not-python', 'config', 'a config file that is not valid Python',
         ('--config={tmp}/broken.py',), 'is not valid Python',
         _write('broken.py', b'def get_config(:\n')),
    Case('config-no-get-config', 'config', 'a config file without `get_config`',
         ('--config={tmp}/empty.py',), 'defines no get_config', _write('empty.py', b'x = 1\n')),
    Case('config-raises', 'config', 'a config file that raises', ('--config={tmp}/raises.py',),
         'ValueError: no such width',
         _write('raises.py', b'def get_config(arg=None):\n  raise ValueError("no such width")\n')),
    Case('unknown-method', 'config', 'an unknown method (`--config.method=gan`)',
         (TOY, '--config.method=gan'), "Unknown method 'gan'"),
    Case('seed-negative', 'config', 'a negative seed', (TOY, '--config.seed=-1'),
         'config.seed is -1; it must be at least 0'),
    Case('batch-zero', 'config', 'batch size 0', (TOY, '--config.train.batch_size=0'),
         'config.train.batch_size is 0; it must be at least 1'),
    Case('batch-devices', 'config', 'a batch that does not split over the devices (7 on 8)',
         (TOY, '--config.train.batch_size=7'), 'does not divide by the 8 devices'),
    Case('steps-negative', 'config', 'a negative number of steps',
         (TOY, '--config.train.num_steps=-5'), 'config.train.num_steps is -5'),
    Case('log-every-zero', 'config', '`train.log_every=0`', (TOY, '--config.train.log_every=0'),
         'config.train.log_every is 0'),
    Case('checkpoint-every-zero', 'config', '`train.checkpoint_every=0`',
         (TOY, '--config.train.checkpoint_every=0'), 'config.train.checkpoint_every is 0'),
    Case('sample-every-zero', 'config', '`train.sample_every=0`',
         (TOY, '--config.train.sample_every=0'), 'config.train.sample_every is 0'),
    Case('lr-negative', 'config', 'a negative learning rate',
         (TOY, '--config.triangle.optim.energy.lr=-0.001'),
         'config.triangle.optim.energy.lr is -0.001'),
    Case('adam-beta', 'config', 'Adam β1 outside [0, 1)', (TOY, '--config.optim.b1=1.5'),
         'config.optim.b1 is 1.5; it must be in [0, 1)'),
    Case('grad-clip-negative', 'config', 'a negative gradient clip',
         (TOY, '--config.optim.grad_clip=-1'), 'config.optim.grad_clip is -1.0'),
    Case('width-zero', 'config', 'network width 0', (TOY, '--config.model.width=0'),
         'config.model.width is 0'),
    Case('z-dim-zero', 'config', 'latent size 0', (TOY, '--config.model.z_dim=0'),
         'config.model.z_dim is 0'),
    Case('sigma-zero', 'config', 'observation noise σ = 0', (TOY, '--config.model.sigma=0'),
         'config.model.sigma is 0.0; it must be positive'),
    Case('energy-dtype', 'config', 'an unknown energy dtype',
         (TOY, '--config.model.energy_dtype=float8'), 'must be float32 or bfloat16'),
    Case('architecture', 'config', 'an unknown architecture',
         (TOY, '--config.model.architecture=transformer'), 'config.model.architecture is'),
    Case('method-section', 'config', "an impossible value in a method's section "
         '(`ebm.n_steps=0`)', ('configs/ebm_toy2d.py:smoke', '--config.ebm.n_steps=0'),
         'ebm.n_steps is 0'),
    Case('channels', 'config', 'images with 2 channels', (DIGITS, '--config.data.channels=2'),
         'config.data.channels is 2'),
    Case('image-size-zero', 'config', 'image size 0', (DIGITS, '--config.data.image_size=0'),
         'config.data.image_size is 0'),
    Case('mask-kind', 'config', 'an unknown mask (`data.mask=holes`)',
         (DIGITS, '--config.data.mask=holes'), 'the kind must be one of none, pixels, block'),
    Case('mask-fraction', 'config', 'a mask hiding more than every pixel (`pixels:2`)',
         (DIGITS, '--config.data.mask=pixels:2'), 'the fraction missing must lie in [0, 1)'),
    Case('mask-points', 'config', 'a mask on 2-D points', (TOY, '--config.data.mask=block:4'),
         'needs image data, but this source holds points'),
    Case('dequantize-negative', 'config', 'a negative dequantization noise',
         (TOY, '--config.data.dequantize=-0.1'), 'config.data.dequantize is -0.1'),
    Case('holdout-too-big', 'config', 'a holdout as large as the training split',
         (DIGITS, '--config.data.max_examples=0', '--config.data.holdout=1797'),
         'config.data.holdout is 1797'),
    Case('max-examples-below-batch', 'config', '`data.max_examples` below the batch size',
         (TOY, '--config.data.max_examples=5'), 'fewer than one batch'),
    Case('splits', 'config', 'split names a source does not have',
         (DIGITS, '--config.data.train_split=validation'), 'has exactly two splits'),
    # ------------------------------------------------------------------------- data
    Case('source-prefix', 'data', 'an unknown source (`flickr:cats`)',
         (TOY, '--config.data.source=flickr:cats'), 'Unknown data source'),
    Case('toy2d-name', 'data', 'an unknown 2-D density', (TOY, '--config.data.source=toy2d:blob'),
         "Unknown 2-D toy distribution 'blob'"),
    Case('sklearn-name', 'data', 'an unknown scikit-learn set',
         (DIGITS, '--config.data.source=sklearn:iris'), 'the only one is digits'),
    Case('texture-name', 'data', 'an unknown texture',
         ('configs/coopnets_texture.py:smoke', '--config.data.source=texture:marble'),
         "Unknown texture 'marble'"),
    Case('texture-unreadable', 'data', 'a texture file that is not an image',
         ('configs/coopnets_texture.py:smoke', '--config.data.source=texture:{tmp}/wall.png'),
         'Cannot read the texture image', _write('wall.png', b'not a png')),
    Case('tfds-not-prepared', 'data', 'a tfds data set that is not prepared (no internet)',
         ('configs/triangle_cifar.py:smoke', '--config.data.data_dir={tmp}/tfds'),
         'is not prepared in'),
    Case('npz-missing', 'data', 'a data file that does not exist', (TOY, *_NPZ),
         'which does not exist'),
    Case('folder-missing', 'data', 'a folder that does not exist',
         (DIGITS, '--config.data.source=folder:{tmp}/nowhere'), 'which does not exist'),
    Case('npz-directory', 'data', 'a directory given as the .npz file',
         (TOY, '--config.data.source=npz:{tmp}'), 'Is a directory'),
    Case('npz-corrupt', 'data', 'a corrupt .npz (not a zip archive)', (TOY, *_NPZ),
         'File is not a zip file', _write('data.npz', b'PK\x03\x04' + b'garbage' * 20)),
    Case('npz-pickle', 'data', 'an .npz holding Python objects', (TOY, *_NPZ),
         'Object arrays cannot be loaded', _npz(x=np.array([{'a': 1}] * 4, dtype=object))),
    Case('npz-no-x', 'data', 'an .npz without the `x` array', (TOY, *_NPZ),
         "has the arrays ['y'] but no",
         _npz(y=_POINTS)),
    Case('npz-shape', 'data', 'arrays of the wrong shape (3-D points)', (TOY, *_NPZ),
         'has shape (64, 3)', _npz(x=np.zeros((64, 3), np.float32))),
    Case('npz-nan', 'data', 'NaN in the data', (TOY, *_NPZ), 'NaN or infinite values',
         _npz(x=np.where(np.arange(128).reshape(64, 2) == 7, np.nan, 0).astype(np.float32))),
    Case('npz-float-range', 'data', 'float images outside [-1, 1]', (DIGITS, *_NPZ),
         'must lie in [-1, 1]', _npz(x=np.full((64, 8, 8), 255.0, np.float32))),
    Case('npz-int-range', 'data', 'integer images outside 0..255', (DIGITS, *_NPZ),
         'values outside 0..255', _npz(x=np.full((64, 8, 8), 300, np.int16))),
    Case('npz-labels', 'data', 'labels that do not match the examples', (DIGITS, *_NPZ),
         'must hold one integer per row', _npz(x=_IMAGES, label=np.zeros(63, np.int64))),
    Case('empty-train', 'data', 'an empty training split', (TOY, *_NPZ),
         'The train split of the data source', _npz(x=np.zeros((0, 2), np.float32))),
    Case('empty-test', 'data', 'an empty test split', (TOY, *_NPZ),
         'The test split of the data source',
         _npz(x=_POINTS, x_test=np.zeros((0, 2), np.float32))),
    Case('few-examples', 'data', 'fewer examples than a batch (5 for 16)', (TOY, *_NPZ),
         'is larger than the 5 training examples', _npz(x=np.zeros((5, 2), np.float32))),
    Case('idx-empty-dir', 'data', 'an `idx:` folder without MNIST files',
         (DIGITS, '--config.data.source=idx:{tmp}'), 'has no t10k-images-idx3-ubyte'),
    Case('idx-truncated', 'data', 'a truncated IDX file', (DIGITS, '--config.data.source=idx:{tmp}'),
         'is truncated or corrupt', _idx(_IDX_HEADER + bytes(100))),
    Case('idx-magic', 'data', 'a file that is not IDX', (DIGITS, '--config.data.source=idx:{tmp}'),
         'is not an IDX file', _idx(b'\x89PNG' + bytes(200))),
    Case('idx-labels', 'data', 'IDX images and labels that do not belong together',
         (DIGITS, '--config.data.source=idx:{tmp}'), 'do not belong together',
         _idx(_IDX_HEADER + bytes(144), b'\0\0\x08\x01' + struct.pack('>i', 3) + bytes(3))),
    Case('folder-empty', 'data', 'a folder without images',
         (DIGITS, '--config.data.source=folder:{tmp}'), 'holds no image files'),
    Case('folder-undecodable', 'data', 'image files that do not decode',
         (DIGITS, '--config.data.source=folder:{tmp}'), 'could be decoded',
         _write('train/cat/0.png', b'not a png')),
    Case('folder-test-only', 'data', 'a `test/` folder without `train/`',
         (DIGITS, '--config.data.source=folder:{tmp}/images'), 'but no train/ folder',
         _png_tree('test/cat/0.png', 'extra/cat/0.png')),
    Case('folder-mixed', 'data', 'class folders mixed with loose images',
         (DIGITS, '--config.data.source=folder:{tmp}/images'), 'mixes class sub-folders',
         _png_tree('cat/0.png', 'loose.png')),
    Case('tar-corrupt', 'data', 'a corrupt .tar.gz',
         (DIGITS, '--config.data.source=folder:{tmp}/images.tar.gz'),
         'could not be read as a tar archive', _write('images.tar.gz', b'\x1f\x8b' + bytes(64))),
    # ------------------------------------------------------------------------- command line
    Case('unknown-flag', 'command line', 'an unknown flag (`--stepz=5`)', (TOY, '--stepz=5'),
         "Unknown command line flag 'stepz'"),
    Case('flag-type', 'command line', 'a flag value of the wrong type (`--num_processes=two`)',
         (TOY, '--num_processes=two'), "flag --num_processes=two: invalid literal"),
    Case('no-workdir', 'command line', 'no `--workdir`', (TOY,),
         '--workdir is missing', workdir=False),
    Case('empty-workdir', 'command line', 'an empty `--workdir=`', (TOY, '--workdir='),
         '--workdir is missing'),
    Case('no-config', 'command line', 'no `--config`', (), 'Flag --config must have a value'),
    Case('workdir-file', 'command line', 'a workdir that is a file',
         (TOY, '--workdir={tmp}/file'), 'is a file, not a directory', _write('file', b'')),
    Case('workdir-under-file', 'command line', 'a workdir that cannot be created (under a file)',
         (TOY, '--workdir={tmp}/file/run'), 'cannot be written: Not a directory',
         _write('file', b'')),
    Case('workdir-unwritable', 'command line', 'a workdir where nothing may be written',
         (TOY, '--workdir=/sys/egm_run'), 'cannot be written'),
    # ------------------------------------------------------------------------- multi-process
    Case('launch-incomplete', 'multi-process', '`--coordinator_address` without '
         '`--process_id`', (TOY, '--coordinator_address=127.0.0.1:9', '--num_processes=2'),
         '--process_id is missing'),
    Case('launch-process-id', 'multi-process', '`--process_id` not below `--num_processes`',
         (TOY, '--coordinator_address=127.0.0.1:9', '--num_processes=2', '--process_id=2'),
         'must lie in [0, --num_processes=2)'),
    Case('launch-address', 'multi-process', 'a coordinator address without a port',
         (TOY, '--coordinator_address=node0', '--num_processes=2', '--process_id=1'),
         'is not HOST:PORT'),
    Case('heartbeat-zero', 'multi-process', 'a heartbeat timeout of 0 s',
         (TOY, '--heartbeat_timeout=0'), 'must be at least 1'),
]

# Rows checked by tests of their own (processes started and killed), in the table too.
OTHER_ROWS = [
    ('multi-process', 'process 0 (the coordinator) never starts',
     'does not answer', 'test_a_missing_coordinator_stops_the_process'),
    ('multi-process', '`--distributed` where JAX detects no cluster',
     'JAX could not set up the processes', 'test_distributed_without_a_cluster'),
    ('multi-process', 'a process killed while the others train',
     'a computation shared with the other processes failed',
     'test_a_killed_process_stops_the_other'),
]

# Rows owned by tests/test_checkpoint_faults.py (checkpoints, disk full).
CHECKPOINT_ROWS = [
    ('checkpoint', 'a corrupt or truncated newest checkpoint (a warning; the run resumes from '
     'the previous one)', 'is corrupt',
     'test_checkpoint_faults.py::test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one'),
    ('checkpoint', 'a workdir written by another config',
     'holds the checkpoints of a run with another config',
     'test_checkpoint_faults.py::test_a_workdir_of_another_config_is_refused_naming_the_keys'),
    ('checkpoint', 'disk full during a checkpoint write', 'failed: the disk is full',
     'test_checkpoint_faults.py::'
     'test_a_full_disk_during_a_checkpoint_write_is_a_clear_error_and_keeps_the_previous'),
    ('checkpoint', 'a workdir that turns read-only during a checkpoint write',
     'failed: the file system is read-only',
     'test_checkpoint_faults.py::test_a_read_only_disk_during_a_checkpoint_write_is_a_clear_error'),
]


def readme_table() -> str:
  """The troubleshooting table of docs/troubleshooting.md: one row per case and per row with its own test."""
  lines = ['| area | bad input | message (excerpt) | test |', '|---|---|---|---|']
  for case in CASES:
    lines.append(f'| {case.area} | {case.bad_input} | `{case.fragment}` | '
                 f'`{case.id}` |')
  for area, bad_input, fragment, test in OTHER_ROWS + CHECKPOINT_ROWS:
    lines.append(f'| {area} | {bad_input} | `{fragment}` | `{test}` |')
  return '\n'.join(lines)


if __name__ == '__main__':
  print(readme_table())
