"""The platform's seams: the method contract, registries, config sections and arguments,
per-example state sharded on `data`, and training phases (tests/platform_methods.py)."""
import jax
import numpy as np
import pytest

import per_example_config
import platform_methods
from configs import default, triangle_digits
from egm.config import arguments, defaults
from egm.run import parallel, trainer
from egm.errors import EgmError
from egm.evaluation import metrics, registry  # noqa: F401  (metrics registers the built-in ones)
from egm.methods import (CAPABILITIES, METHODS, DataSpec, Method, generative_methods,
                         has_capability, make_method, register)


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def test_every_method_declares_known_capabilities_and_implements_them():
  for name, cls in METHODS.items():
    assert issubclass(cls, Method) and cls.name == name
    assert set(cls.capabilities) <= set(CAPABILITIES), name
  assert has_capability(METHODS['triangle'], 'energy')
  assert not has_capability(METHODS['vae'], 'energy')
  assert has_capability(METHODS['vae'], 'sample') and not has_capability(METHODS['classifier'],
                                                                          'sample')


def test_registering_a_capability_without_its_function_is_refused():
  class Liar(Method):
    capabilities = frozenset({'energy'})
    def init(self, key, example_batch): ...
    def update(self, state, batch, key): ...
  with pytest.raises(EgmError, match="declares 'energy' but has no energy"):
    register('liar')(Liar)
  class Unknown(Liar):
    capabilities = frozenset({'telepathy'})
  with pytest.raises(EgmError, match='unknown capability .telepathy.'):
    register('unknown')(Unknown)
  assert 'liar' not in METHODS and 'unknown' not in METHODS


def test_duplicate_registrations_are_refused_naming_both():
  class Another(METHODS['vae']):
    pass
  with pytest.raises(EgmError, match="Duplicate method name 'vae'.*Another.*VAE"):
    register('vae')(Another)
  with pytest.raises(EgmError, match="Duplicate metric name 'samples'"):
    registry.register_metric('samples')(lambda ctx: {})
  assert METHODS['vae'].__name__ == 'VAE'


def test_the_classifier_is_not_listed_as_a_generative_method():
  names = generative_methods()
  assert 'classifier' not in names and {'triangle', 'vae', 'ebm', 'coopnets'} <= set(names)


def test_base_config_is_assembled_from_the_methods_sections():
  config = defaults.base_config()
  for name, cls in METHODS.items():
    section = cls.config_section()
    if section is not None:
      assert config[name].to_dict() == section.to_dict(), name
  assert config.row_means.noise == 0.01  # a method registered outside egm gets its section too
  smoke = defaults.smoke(defaults.base_config())
  assert smoke.ebm.n_steps == 5 and smoke.coopnets.n_steps == 3  # each method's own shrink


def test_a_method_sees_its_section_and_the_data_spec_not_the_whole_config():
  config = triangle_digits.get_config('smoke')
  method = make_method(config, DataSpec.of((8, 8, 1), num_examples=50, global_batch=16))
  assert method.hp.to_dict() == config.triangle.to_dict()
  assert method.data == DataSpec((8, 8, 1), 50, 16, 3) and method.data.per_example_rows == 64
  assert not hasattr(method, 'config') and 'train' not in method.hp


def test_config_arguments_smoke_and_key_values():
  config = default.finish(defaults.base_config(), 'smoke,model.width=32,z_dim=5,seed=3')
  assert (config.model.width, config.model.z_dim, config.seed) == (32, 5, 3)
  assert config.train.num_steps == 6  # smoke applied, explicit values win over it
  config = arguments.apply(defaults.base_config(), 'ebm.persistent=true,ebm.step_size=0.5')
  assert config.ebm.persistent is True and config.ebm.step_size == 0.5
  with pytest.raises(EgmError, match="'step_size' is ambiguous.*coopnets.step_size.*ebm.step_size"):
    arguments.apply(defaults.base_config(), 'step_size=0.5')
  with pytest.raises(EgmError, match="unknown key 'widht'.*model.width"):
    arguments.apply(defaults.base_config(), 'widht=3')
  with pytest.raises(EgmError, match="'abc' is not a int"):
    arguments.apply(defaults.base_config(), 'model.width=abc')
  with pytest.raises(EgmError, match="Unknown config argument 'smok'"):
    arguments.apply(defaults.base_config(), 'smok')


def _train_row_means(tmp_path, name, mesh_devices=None, num_steps=12, monkeypatch=None):
  config = per_example_config.get_config()
  config.train.num_steps = num_steps
  if mesh_devices is not None:
    monkeypatch.setattr(parallel, 'make_mesh',
                        lambda devices=None, make=parallel.make_mesh: make(mesh_devices))
  return trainer.train(config, str(tmp_path / name))


def test_per_example_state_is_sharded_and_the_same_on_1_and_8_devices(tmp_path, monkeypatch):
  eight = _train_row_means(tmp_path, 'eight')
  assert len(jax.devices()) == 8
  table = eight['per_example']['mean']
  assert table.sharding.spec == jax.sharding.PartitionSpec(parallel.DATA_AXIS)
  assert len({s.device for s in table.addressable_shards}) == 8
  assert eight['model']['params'].sharding.is_fully_replicated
  one = _train_row_means(tmp_path, 'one', jax.devices()[:1], monkeypatch=monkeypatch)
  for a, b in zip(_leaves(eight), _leaves(one)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  counts = np.asarray(eight['per_example']['count'])
  assert counts.sum() == 12 * 8 and set(np.unique(counts)) <= {2.0, 3.0}  # 2.4 epochs


def test_per_example_state_is_checkpointed_and_resumes_on_the_same_trajectory(tmp_path):
  straight = _train_row_means(tmp_path, 'straight')
  _train_row_means(tmp_path, 'resumed', num_steps=7)
  resumed = _train_row_means(tmp_path, 'resumed')
  for a, b in zip(_leaves(straight), _leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def _train_phases(tmp_path, name, num_steps):
  config = triangle_digits.get_config('smoke')
  config.method = 'two_resolutions'
  config.train.num_steps = num_steps
  config.train.checkpoint_every = 100
  return trainer.train(config, str(tmp_path / name))


def test_phases_jit_once_each_serve_their_resolution_and_resume_mid_phase(tmp_path):
  platform_methods.TwoResolutions.traces.clear()
  straight = _train_phases(tmp_path, 'straight', 10)
  assert platform_methods.TwoResolutions.traces == {0: 1, 1: 1}  # one trace per phase
  assert straight['model']['params'].shape == (8, 8, 1)
  for stop in (2, 4, 6):  # mid-phase, at the boundary, mid-way through the fade-in
    _train_phases(tmp_path, f'resumed{stop}', stop)
    resumed = _train_phases(tmp_path, f'resumed{stop}', 10)
    for a, b in zip(_leaves(straight), _leaves(resumed)):
      np.testing.assert_array_equal(a, b, err_msg=f'stopped at {stop}')


def test_a_phase_size_that_does_not_divide_the_image_size_is_refused(tmp_path):
  config = triangle_digits.get_config('smoke')
  config.method = 'two_resolutions'
  config.data.image_size = 10
  with pytest.raises(EgmError, match=r"Phase 'coarse' trains at 4x4.*data.image_size=10"):
    trainer.train(config, str(tmp_path))


def test_every_metric_names_known_capabilities():
  """A metric that names a function instead of a capability would silently never run."""
  known = set(CAPABILITIES) | {'sample'}
  for metric in registry.METRICS.values():
    assert set(metric.needs.methods) | set(metric.needs.any_of) <= known, metric.name
