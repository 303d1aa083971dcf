"""Tests of egm.data's sources: files, archives, IDX, npz, sklearn, tfds, toy distributions."""
import gzip
import io
import logging
import os
import pathlib
import struct
import tarfile

import numpy as np
import PIL.Image
import pytest

from configs.default import get_config
from egm import data
from egm.data import fashion_mnist, toy2d
from egm.errors import EgmError

SHARED = pathlib.Path(__file__).resolve().parents[1] / '..' / 'shared' / 'data'


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
  monkeypatch.setenv('EGM_CACHE_DIR', str(tmp_path / 'cache'))


def _config(source, **overrides):
  config = get_config().data
  config.source = source
  for key, value in overrides.items():
    config[key] = value
  return config


def _png(array, fmt='PNG'):
  buffer = io.BytesIO()
  PIL.Image.fromarray(array).save(buffer, format=fmt)
  return buffer.getvalue()


def _write_image_tree(root, rng):
  """Two class folders of 3 images each (mixed sizes/modes) + 1 corrupt file."""
  for name, shape in (('cat', (12, 12, 3)), ('dog', (10, 14))):
    folder = root / name
    folder.mkdir(parents=True)
    for i in range(3):
      image = rng.integers(0, 256, shape, dtype=np.uint8)
      (folder / f'{i}.png').write_bytes(_png(image))
  (root / 'dog' / 'broken.jpg').write_bytes(b'not an image at all')


# ---------------------------------------------------------------- folder:


def test_folder_classes_resize_and_corrupt_file(tmp_path, caplog):
  _write_image_tree(tmp_path / 'pets', np.random.default_rng(0))
  config = _config(f'folder:{tmp_path / "pets"}', image_size=8, channels=3)
  for _ in range(2):  # the second load comes from the cache
    caplog.clear()
    with caplog.at_level(logging.WARNING):
      ds = data.load_dataset(config)
    assert 'Skipped 1 unreadable' in caplog.text
    assert 'dog/broken.jpg' in caplog.text
  assert os.listdir(tmp_path / 'cache')
  assert (ds.name, ds.kind, ds.num_classes, ds.test) == ('pets', 'image', 2,
                                                         None)
  assert ds.train.x.shape == (6, 8, 8, 3) and ds.train.x.dtype == np.uint8
  np.testing.assert_array_equal(ds.train.label, [0, 0, 0, 1, 1, 1])
  batch = ds.train.get(np.arange(6))
  assert batch['x'].dtype == np.float32 and batch['label'].dtype == np.int32
  assert -1 <= batch['x'].min() and batch['x'].max() <= 1


def test_folder_exact_pixels_and_grey(tmp_path):
  image = np.arange(64, dtype=np.uint8).reshape(8, 8)
  (tmp_path / 'flat').mkdir()
  (tmp_path / 'flat' / 'a.png').write_bytes(_png(image))
  ds = data.load_dataset(
      _config(f'folder:{tmp_path / "flat"}', image_size=8, channels=1))
  assert ds.train.label is None and ds.num_classes is None
  np.testing.assert_array_equal(ds.train.x[0, ..., 0], image)
  np.testing.assert_allclose(ds.train.get([0])['x'][0, ..., 0],
                             image / 127.5 - 1, atol=1e-6)


def test_folder_tar_gz_with_splits(tmp_path):
  rng = np.random.default_rng(1)
  tree = tmp_path / 'tree'
  for split in ('train', 'test'):
    _write_image_tree(tree / 'toy' / split, rng)
  archive = tmp_path / 'toy.tar.gz'
  with tarfile.open(archive, 'w:gz') as tar:
    tar.add(tree / 'toy', arcname='toy')
  ds = data.load_dataset(_config(f'folder:{archive}', image_size=4))
  assert ds.name == 'toy' and ds.num_classes == 2
  assert ds.train.x.shape == (6, 4, 4, 3) and ds.test.x.shape == (6, 4, 4, 3)
  np.testing.assert_array_equal(ds.test.label, [0, 0, 0, 1, 1, 1])
  swapped = data.load_dataset(_config(
      f'folder:{archive}', image_size=4, train_split='test',
      test_split='validation'))
  assert swapped.test is None and len(swapped.train) == 6


def test_folder_errors(tmp_path):
  with pytest.raises(EgmError, match='does not exist'):
    data.load_dataset(_config(f'folder:{tmp_path / "nowhere"}'))
  bad = tmp_path / 'bad'
  bad.mkdir()
  (bad / 'x.png').write_bytes(b'garbage')
  with pytest.raises(EgmError, match='could be decoded'):
    data.load_dataset(_config(f'folder:{bad}'))
  (bad / 'cls').mkdir()
  (bad / 'cls' / 'y.png').write_bytes(_png(np.zeros((4, 4), np.uint8)))
  with pytest.raises(EgmError, match='Move the loose files'):
    data.load_dataset(_config(f'folder:{bad}'))


# ---------------------------------------------------------------- idx:


def _write_idx(path, array, magic_type=0x08):
  header = bytes([0, 0, magic_type, array.ndim]) + struct.pack(
      f'>{array.ndim}I', *array.shape)
  opener = gzip.open if str(path).endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(header + array.astype('>u1').tobytes())


def test_idx_train_and_test(tmp_path):
  rng = np.random.default_rng(0)
  images = {p: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            for p, n in (('train', 5), ('t10k', 3))}
  for prefix, x in images.items():
    _write_idx(tmp_path / f'{prefix}-images-idx3-ubyte.gz', x)
    _write_idx(tmp_path / f'{prefix}-labels-idx1-ubyte',
               np.arange(len(x), dtype=np.uint8))
  ds = data.load_dataset(_config(f'idx:{tmp_path}', image_size=28,
                                 channels=1))
  np.testing.assert_array_equal(ds.train.x[..., 0], images['train'])
  np.testing.assert_array_equal(ds.test.x[..., 0], images['t10k'])
  np.testing.assert_array_equal(ds.train.label, np.arange(5))
  assert ds.train.label.dtype == np.int32 and ds.num_classes == 5
  rgb = data.load_dataset(_config(f'idx:{tmp_path}', image_size=16))
  assert rgb.train.x.shape == (5, 16, 16, 3)


def test_idx_bad_magic_and_only_test(tmp_path, caplog):
  _write_idx(tmp_path / 't10k-images-idx3-ubyte',
             np.zeros((2, 4, 4), np.uint8))
  with caplog.at_level(logging.WARNING):
    ds = data.load_dataset(_config(f'idx:{tmp_path}', image_size=4))
  assert 'only the t10k' in caplog.text and ds.train is ds.test
  (tmp_path / 't10k-images-idx3-ubyte').write_bytes(b'\x12\x34\x08\x03' * 4)
  with pytest.raises(EgmError, match='not an IDX file'):
    data.load_dataset(_config(f'idx:{tmp_path}'))
  with pytest.raises(EgmError, match='exactly two splits'):
    data.load_dataset(_config(f'idx:{tmp_path}', train_split='train[:5]'))


@pytest.mark.skipif(not (SHARED / 't10k-images-idx3-ubyte.gz').exists(),
                    reason='the shared data directory is absent')
def test_idx_real_mnist_test_set():
  ds = data.load_dataset(_config(f'idx:{SHARED}', image_size=28, channels=1))
  assert ds.name == 'mnist' and ds.num_classes == 10
  assert ds.test.x.shape == (10000, 28, 28, 1)
  np.testing.assert_array_equal(np.unique(ds.test.label), np.arange(10))
  assert ds.test.x.max() == 255 and ds.test.x.min() == 0


# ------------------------------------------------------------ npz:, sklearn:


def test_npz_images_points_and_nan(tmp_path):
  images = np.random.default_rng(0).uniform(-1, 1, (4, 6, 6, 3))
  np.savez(tmp_path / 'imgs.npz', x=images, label=[0, 1, 1, 0],
           x_test=((images[:2] + 1) * 127.5).astype(np.uint8))
  ds = data.load_dataset(_config(f'npz:{tmp_path / "imgs.npz"}',
                                 image_size=6))
  np.testing.assert_allclose(ds.train.get(np.arange(4))['x'], images,
                             atol=1 / 127.5)
  assert ds.num_classes == 2 and ds.test.label is None
  points = np.random.default_rng(0).normal(size=(10, 2))
  np.savez(tmp_path / 'pts.npz', x=points)
  ds = data.load_dataset(_config(f'npz:{tmp_path / "pts.npz"}'))
  assert ds.kind == 'points' and ds.toy2d is None
  np.testing.assert_allclose(ds.train.get([3])['x'][0], points[3], rtol=1e-6)
  points[[1, 4], 0] = np.nan
  np.savez(tmp_path / 'nan.npz', x=points)
  with pytest.raises(EgmError, match=r'2 NaN or infinite.*Remove'):
    data.load_dataset(_config(f'npz:{tmp_path / "nan.npz"}'))


def test_sklearn_digits():
  ds = data.load_dataset(_config('sklearn:digits', image_size=8, channels=1))
  assert (len(ds.train), len(ds.test), ds.num_classes) == (1500, 297, 10)
  assert ds.train.x.shape == (1500, 8, 8, 1) and ds.train.x.max() == 255
  with pytest.raises(EgmError, match='sklearn:digits'):
    data.load_dataset(_config('sklearn:iris'))


# ---------------------------------------------------------------- sources


def test_unknown_prefix_and_max_examples():
  with pytest.raises(EgmError, match=r'folder:, idx:, npz:, sklearn:, texture:, tfds:, '
                     r'toy2d:.*--config.data.source'):
    data.load_dataset(_config('mnist'))
  ds = data.load_dataset(_config('toy2d:moons', max_examples=100))
  assert len(ds.train) == 100 and len(ds.test) == toy2d.NUM_TEST


def _class_ordered_npz(tmp_path, per_class=100, classes=10):
  """Points whose x[:, 0] is the row and whose labels run 0..classes-1 in blocks."""
  n = per_class * classes
  x = np.stack([np.arange(n), np.zeros(n)], axis=1).astype(np.float32)
  np.savez(tmp_path / 'ordered.npz', x=x,
           label=np.repeat(np.arange(classes), per_class))
  return f'npz:{tmp_path / "ordered.npz"}'


def _assert_classes_uniform(labels, classes=10):
  """Each class holds between half and 1.5 times its share of `labels`."""
  shares = np.bincount(labels, minlength=classes) / len(labels)
  assert np.all((shares > 0.5 / classes) & (shares < 1.5 / classes)), shares


def _rows(split):
  return split.x[:, 0].astype(int)


def test_max_examples_is_a_seeded_uniform_sample(tmp_path):
  source = _class_ordered_npz(tmp_path)
  ds = data.load_dataset(_config(source, max_examples=300))
  rows = _rows(ds.train)
  assert len(rows) == len(np.unique(rows)) == 300
  assert np.all(np.diff(rows) > 0)  # the original order
  _assert_classes_uniform(ds.train.label)
  np.testing.assert_array_equal(ds.train.label, np.repeat(np.arange(10), 100)[rows])
  again = data.load_dataset(_config(source, max_examples=300))
  np.testing.assert_array_equal(_rows(again.train), rows)
  with pytest.raises(AssertionError):  # the check fails for the first rows
    _assert_classes_uniform(np.repeat(np.arange(10), 100)[:300])


def test_holdout_is_a_seeded_uniform_sample(tmp_path):
  source = _class_ordered_npz(tmp_path)
  ds = data.load_dataset(_config(source, holdout=200))
  train, test = _rows(ds.train), _rows(ds.test)
  assert (len(train), len(test)) == (800, 200)
  np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1000))
  assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
  _assert_classes_uniform(ds.test.label)
  np.testing.assert_array_equal(ds.test.label, test // 100)
  again = data.load_dataset(_config(source, holdout=200))
  np.testing.assert_array_equal(_rows(again.test), test)
  both = data.load_dataset(_config(source, holdout=200, max_examples=300))
  np.testing.assert_array_equal(_rows(both.test), test)
  assert set(_rows(both.train)) <= set(train)
  _assert_classes_uniform(both.train.label)


# ---------------------------------------------------------------- tfds:


def test_tfds_not_prepared(tmp_path, monkeypatch):
  with pytest.raises(EgmError) as error:
    data.load_dataset(_config('tfds:cifar10', data_dir=str(tmp_path)))
  message = str(error.value)
  assert str(tmp_path) in message and 'tfds build cifar10' in message
  assert 'folder:../shared/data/cifar10_jpeg.tar.gz' in message
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'env'))
  with pytest.raises(EgmError, match=r'(?s)env.*egm.data.fashion_mnist DIR'):
    data.load_dataset(_config('tfds:fashion_mnist'))


def _prepare_tfds(tfds, data_dir, name, version, shape):
  """Prepares a tiny array_record data set with tfds's own builder code.

  Encoding an Image feature from an array needs TensorFlow; from PNG bytes
  it does not. Image i is filled with the value 10 * i and has label i % 3.
  """

  class Tiny(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version(version)

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self, features=tfds.features.FeaturesDict({
              'image': tfds.features.Image(shape=shape),
              'label': tfds.features.ClassLabel(num_classes=10)}))

    def _split_generators(self, dl_manager):
      return {'train': self._generate_examples(7),
              'test': self._generate_examples(4)}

    def _generate_examples(self, n):
      for i in range(n):
        yield i, {'image': _png(np.full(shape, 10 * i, np.uint8).squeeze()),
                  'label': i % 3}

  Tiny.name = name
  Tiny(data_dir=str(data_dir), file_format='array_record'
      ).download_and_prepare()


@pytest.mark.parametrize('name', ['mnist', 'egm_tiny_images'])
def test_tfds_reads_prepared_array_record(tmp_path, name):
  """Reads a registered (mnist) and an unregistered data set, no TensorFlow."""
  tfds = pytest.importorskip('tensorflow_datasets')
  version = str(tfds.builder_cls('mnist').VERSION)
  _prepare_tfds(tfds, tmp_path, name, version, (28, 28, 1))
  config = _config(f'tfds:{name}', data_dir=str(tmp_path), image_size=28,
                   channels=1)
  ds = data.load_dataset(config)
  assert ds.name == name and ds.num_classes == 10
  assert ds.train.x.shape == (7, 28, 28, 1) and len(ds.test) == 4
  values = ds.train.x[:, 0, 0, 0].astype(int)
  np.testing.assert_array_equal(np.sort(values), 10 * np.arange(7))
  np.testing.assert_array_equal(ds.train.label, (values // 10) % 3)
  assert (ds.train.x == ds.train.x[:, :1, :1, :1]).all()
  config.train_split = 'train[:3]'
  assert len(data.load_dataset(config).train) == 3
  config.train_split = 'validation'
  with pytest.raises(EgmError, match='its splits are train, test'):
    data.load_dataset(config)


def test_tfds_tfrecord_format_is_refused(tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  _prepare_tfds(tfds, tmp_path, 'egm_tiny_images', '1.0.0', (4, 4, 3))
  info_file = tmp_path / 'egm_tiny_images' / '1.0.0' / 'dataset_info.json'
  info_file.write_text(info_file.read_text().replace(
      '"fileFormat": "array_record"', '"fileFormat": "tfrecord"'))
  with pytest.raises(EgmError, match='--file_format=array_record'):
    data.load_dataset(_config('tfds:egm_tiny_images', data_dir=str(tmp_path)))


# ---------------------------------------------------------------- toy2d


def test_toy2d_structure():
  rng = np.random.default_rng(0)
  for name in data.TOY2D_NAMES:
    points = data.sample_toy2d(name, rng, 2000)
    assert points.shape == (2000, 2) and points.dtype == np.float32
    assert np.abs(points).max() < 5, name
  x = data.sample_toy2d('8gaussians', rng, 4000)
  distance = np.linalg.norm(
      x[:, None] - toy2d.EIGHT_GAUSSIAN_CENTRES[None], axis=-1)
  assert np.median(distance.min(1)) < 0.5
  assert len(np.unique(distance.argmin(1))) == 8
  moons = data.sample_toy2d('moons', rng, 4000)
  assert (np.abs(moons) < 4).all()
  board = data.sample_toy2d('checkerboard', rng, 4000)
  assert (np.abs(board) <= 4).all()
  cell = np.floor(board / 2).astype(int)  # occupied 2x2 cells alternate
  assert ((cell[:, 0] + cell[:, 1]) % 2 == 0).all()
  radius = np.linalg.norm(data.sample_toy2d('rings', rng, 4000), axis=1)
  assert np.abs(radius[:, None] - [0.75, 1.5, 2.25, 3]).min(1).max() < 0.5
  ds = data.load_dataset(_config('toy2d:rings'))
  assert (ds.kind, ds.toy2d, len(ds.train)) == ('points', 'rings', 100_000)
  np.testing.assert_array_equal(
      ds.train.x[:5],
      data.sample_toy2d('rings', np.random.default_rng(0), 100_000)[:5])
  with pytest.raises(EgmError, match='8gaussians'):
    data.load_dataset(_config('toy2d:9gaussians'))


# ---------------------------------------------------------------- pipeline


def test_fashion_mnist_fetch(tmp_path, monkeypatch, capsys):
  target = tmp_path / 'have' / fashion_mnist.SUBDIR
  target.mkdir(parents=True)
  for name in fashion_mnist.FILES:
    (target / name).write_bytes(b'')
  assert fashion_mnist.main(['prog', str(tmp_path / 'have')]) == 0
  assert capsys.readouterr().out.strip() == f'idx:{target}'
  monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
  with pytest.raises(EgmError, match='apt-get download'):
    fashion_mnist.fetch(str(tmp_path / 'new'))
