"""FID Inception-v3: architecture, weight loading/conversion, and the port check against torch."""

import sys
import zipfile

import jax
import numpy as np
import pytest

from egm.errors import EgmError
from egm.evaluation import inception
from egm.evaluation import torch_checkpoint

# torchvision's inception_v3 has 27,161,264 parameters; without its aux head (3,326,696) and
# with 1008 instead of 1000 classes (+16,392) that leaves the FID network's 23,850,960.
_FID_INCEPTION_PARAMETERS = 23_850_960


@pytest.fixture(scope='module')
def random_weights(tmp_path_factory):
  """(state dict, path of it in torch.save's zip format written without torch)."""
  state = inception.random_state_dict(seed=0)
  path = str(tmp_path_factory.mktemp('inception') / inception.WEIGHTS_FILE)
  inception.save_state_dict(path, state)
  return state, path


@pytest.fixture(scope='module')
def images():
  return np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)


@pytest.fixture(scope='module')
def apply_fn(random_weights):
  """The jitted Flax network with the random weights (compiled once per input shape)."""
  return inception.inception_fn(inception.load_inception(random_weights[1]))


@pytest.fixture(scope='module')
def flax_outputs(apply_fn, images):
  """(pool3, logits) of the Flax network with the random weights, batch 2."""
  return jax.device_get(apply_fn(images))


def test_state_dict_has_the_keys_and_shapes_of_the_published_file():
  shapes = inception.expected_state_shapes()
  assert shapes['Conv2d_1a_3x3.conv.weight'] == (32, 3, 3, 3)
  assert shapes['Mixed_6b.branch7x7_2.conv.weight'] == (128, 128, 1, 7)
  assert shapes['Mixed_7c.branch3x3dbl_3b.conv.weight'] == (384, 384, 3, 1)
  assert shapes['Mixed_7c.branch_pool.bn.running_var'] == (192,)
  assert shapes['fc.weight'] == (1008, 2048) and shapes['fc.bias'] == (1008,)
  learned = sum(int(np.prod(s)) for k, s in shapes.items() if 'running' not in k)
  assert learned == _FID_INCEPTION_PARAMETERS
  assert not any(k.startswith('AuxLogits') for k in shapes)


def test_flax_network_outputs_pool3_and_logits(flax_outputs):
  pool3, logits = flax_outputs
  assert pool3.shape == (2, inception.FEATURE_DIM)
  assert logits.shape == (2, inception.NUM_CLASSES)
  assert np.all(np.isfinite(pool3)) and np.all(pool3 >= 0)  # Mean of ReLU outputs.


def test_weights_round_trip_through_files(random_weights, tmp_path, monkeypatch):
  state, path = random_weights
  monkeypatch.setitem(sys.modules, 'torch', None)  # Force the numpy reader.
  assert zipfile.is_zipfile(path)
  variables = inception.load_inception(path)
  kernel = variables['params']['Mixed_5b']['branch5x5_2']['conv']['kernel']
  np.testing.assert_array_equal(
      kernel, state['Mixed_5b.branch5x5_2.conv.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(variables['params']['fc']['kernel'], state['fc.weight'].T)
  np.testing.assert_array_equal(variables['batch_stats']['Conv2d_1a_3x3']['bn']['var'],
                                state['Conv2d_1a_3x3.bn.running_var'])
  npz = str(tmp_path / 'inception.npz')
  inception.save_state_dict(npz, state)
  monkeypatch.setenv(inception.WEIGHTS_ENV, npz)
  from_npz = inception.load_inception()
  assert jax.tree.all(jax.tree.map(np.array_equal, from_npz, variables))


def test_bad_weight_files_raise_clear_errors(random_weights, tmp_path, monkeypatch):
  state, _ = random_weights
  wrong = dict(state)
  wrong['Mixed_6a.branch3x3.conv.weight'] = np.zeros((384, 288, 3, 2), np.float32)
  with pytest.raises(EgmError, match=r'Mixed_6a.branch3x3.conv.weight has shape '
                     r'\(384, 288, 3, 2\), expected \(384, 288, 3, 3\)'):
    inception.state_dict_to_variables(wrong)
  missing = {k: v for k, v in state.items() if k != 'fc.bias'}
  with pytest.raises(EgmError, match=r"1 missing keys \(first: \['fc.bias'\]\)"):
    inception.state_dict_to_variables(missing)
  with pytest.raises(EgmError, match='AuxLogits.fc.weight'):
    inception.state_dict_to_variables({**state, 'AuxLogits.fc.weight': np.zeros((1008, 768))})
  garbage = tmp_path / 'garbage.pth'
  garbage.write_bytes(b'not a checkpoint at all')
  monkeypatch.setitem(sys.modules, 'torch', None)
  with pytest.raises(EgmError, match='PyTorch checkpoint'):
    inception.load_inception(str(garbage))
  with pytest.raises(EgmError, match='does not exist'):
    inception.load_inception(str(tmp_path / 'absent.pth'))
  monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
  with pytest.raises(EgmError, match=inception.WEIGHTS_ENV):
    inception.load_inception()


def test_channel_counts():
  fn = inception.inception_fn({})  # The check runs at trace time, before any weight is used.
  with pytest.raises(EgmError, match=r'got shape \(1, 8, 8, 2\)'):
    fn(np.zeros((1, 8, 8, 2), np.float32))


def test_grey_images_equal_their_rgb_repeat(apply_fn, images):
  grey = images[..., :1]
  np.testing.assert_allclose(apply_fn(grey)[0], apply_fn(np.repeat(grey, 3, -1))[0], rtol=1e-6)


def test_numpy_reader_reads_files_written_by_torch(tmp_path, monkeypatch):
  torch = pytest.importorskip('torch')
  base = torch.randn(10, 6)
  state = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3)).state_dict()
  state.update(view=base[:, 1:4], transposed=base.t(), half=torch.randn(5).half())
  for legacy in (False, True):
    path = str(tmp_path / f'legacy_{legacy}.pth')
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    with monkeypatch.context() as m:
      m.setitem(sys.modules, 'torch', None)
      read = torch_checkpoint.read_torch_state_dict(path)
    for key, value in state.items():
      np.testing.assert_array_equal(read[key], value.numpy())


def test_flax_port_matches_the_torch_reference(random_weights, images, flax_outputs):
  torch = pytest.importorskip('torch')
  import torch_reference_inception  # pylint: disable=g-import-not-at-top
  net = torch_reference_inception.FIDInceptionV3().eval()
  # torch's own reader takes the file egm wrote, and every key and shape must match.
  net.load_state_dict(torch.load(random_weights[1], weights_only=True), strict=True)
  with torch.no_grad():
    outputs = net(torch.from_numpy(images.transpose(0, 3, 1, 2)))
  for name, ours, theirs in zip(('pool3', 'logits'), flax_outputs, outputs):
    theirs = theirs.numpy()
    rel = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
    print(f'Inception port check: {name} relative error {rel:.3g}')
    assert rel < 1e-4
