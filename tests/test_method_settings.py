"""A method owns its networks' optimiser settings (a method registered from tests/ trains with
no change under egm/), and a workdir's compatibility covers only what the run uses."""
import json
import os

import numpy as np
import pytest

import critic_method  # noqa: F401  (registers critic_and_scout)
from configs import ebm_toy2d, triangle_toy2d
from egm.config import defaults
from egm.errors import EgmError
from egm.methods import METHODS, optim
from egm.run import experiment, trainer
from egm.run.checkpointing import Checkpointer


def test_a_method_from_tests_trains_with_its_own_per_network_settings(tmp_path):
  """One update: Adam's first step moves the critic by its own lr and the scout, which sets
  none, by the shared `optim.lr`."""
  config = triangle_toy2d.get_config('smoke')
  config.method = 'critic_and_scout'
  config.optim.lr, config.optim.grad_clip = 3e-3, 0.0
  config.train.num_steps = 1
  assert config.critic_and_scout.optim.critic.lr == 0.01
  assert config.critic_and_scout.optim.scout.lr is None
  trainer.train(config, str(tmp_path))
  exp = experiment.build(config)
  state = Checkpointer(str(tmp_path)).restore(exp.init_state(), 1)
  for name, lr in (('critic', 0.01), ('scout', 3e-3)):
    np.testing.assert_allclose(np.abs(np.asarray(state[name]['params'])), lr, rtol=1e-4)


def test_settings_resolve_per_network_over_the_shared_ones_and_bad_values_name_the_key():
  config = triangle_toy2d.get_config('smoke')
  config.triangle.optim.generator.b1 = 0.9
  config.optim.b1, config.optim.weight_decay = 0.6, 1e-4
  got = {n: optim.settings(config.triangle, config.optim, n) for n in ('energy', 'generator')}
  assert (got['energy'].b1, got['generator'].b1) == (0.6, 0.9)
  assert got['generator'].weight_decay == 1e-4 and got['energy'].lr == 3e-4
  with pytest.raises(EgmError, match="no optimiser settings for a network 'critic'"):
    optim.settings(config.triangle, config.optim, 'critic')
  config.triangle.optim.encoder.b2 = 1.5
  assert optim.problems(config) == [
      'config.triangle.optim.encoder.b2 is 1.5; it must be in [0, 1).']


def test_weight_decay_is_l2_in_the_gradient_before_adam():
  """With g = 0, L2 decay wd gives the gradient wd·θ, and Adam's first step is lr·sign(θ)."""
  import jax.numpy as jnp
  s = optim.Settings(lr=0.1, b1=0.0, b2=0.999, weight_decay=0.5, grad_clip=0.0,
                     decay_per_epoch=1.0)
  opt = optim.make_optimizer(s, 10)
  theta = jnp.array([2.0, -3.0])
  updates, _ = opt.update(jnp.zeros(2), opt.init(theta), theta)
  np.testing.assert_allclose(updates, [-0.1, 0.1], rtol=1e-4)


def test_an_old_config_json_loads_with_its_learning_rates_in_the_method_section():
  saved = {'method': 'triangle', 'optim': {'lr_energy': 2e-4, 'lr_generator': 1e-3,
                                           'lr_encoder': 5e-4, 'b1': 0.5},
           'model': {'conv_impl': 'auto'}, 'srinf': {'lr_step_size': 0.01}}
  config = defaults.with_defaults(saved)
  assert [config.triangle.optim[n].lr for n in ('energy', 'generator', 'encoder')] == [
      2e-4, 1e-3, 5e-4]
  assert config.srinf.optim.step_size.lr == 0.01 and 'conv_impl' not in config.model
  assert 'lr_energy' not in config.optim


def _workdir_of(config, tmp_path):
  """A workdir holding `config`'s config.json and a checkpoint directory of step 1."""
  os.makedirs(tmp_path / 'checkpoints' / '1')
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(config.to_dict(), f)
  return str(tmp_path)


def test_changing_another_methods_default_resumes_and_the_runs_own_refuses(tmp_path,
                                                                          monkeypatch):
  workdir = _workdir_of(ebm_toy2d.get_config('smoke'), tmp_path)
  triangle = METHODS['triangle']
  section = triangle.config_section()
  section.entropy_weight = 0.7  # a new default of another method
  monkeypatch.setattr(triangle, 'config_section', staticmethod(lambda: section))
  config = ebm_toy2d.get_config('smoke')
  assert config.triangle.entropy_weight == 0.7
  experiment.check_workdir_config(config, workdir)  # no refusal
  config.ebm.n_steps += 1
  config.triangle.entropy_weight = 0.1
  with pytest.raises(EgmError, match=r'another config.*ebm\.n_steps') as error:
    experiment.check_workdir_config(config, workdir)
  assert 'triangle.' not in str(error.value)
