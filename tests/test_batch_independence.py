"""Chains are per example: inferring (or sampling) example i gives the same result whatever the
other rows of its batch hold, for every method whose Langevin chains differentiate a network
(abp, srinf, coopnets' z-space and x-space chains, ebm), in training and at test time; with
BatchNorm in training mode inside a chain it would not (the control)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import abp_fashion, coopnets_fashion, ebm_fashion, srinf_fashion
from egm import sampling
from egm.methods import DataSpec, base, make_method
from egm.nets import make_networks

SHAPE = (28, 28, 1)


def _method(module):
  config = module.get_config('smoke')
  method = make_method(config, DataSpec.of(SHAPE, num_examples=64, global_batch=8))
  example = {'x': jnp.zeros((2, *SHAPE)), 'index': jnp.arange(2)}
  return method, jax.jit(method.init)(jax.random.key(0), example)


def _two_batches():
  """Two batches of 8 that share row 0 only."""
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, (8, *SHAPE)).astype(np.float32)
  b = np.concatenate([a[:1], rng.uniform(-1, 1, (7, *SHAPE)).astype(np.float32)])
  return jnp.asarray(a), jnp.asarray(b)


def _row0(fn):
  """fn(batch)[0] for both batches, each one jitted call."""
  a, b = _two_batches()
  jitted = jax.jit(fn)
  return np.asarray(jitted(a)[0]), np.asarray(jitted(b)[0])


def _cases():
  abp, abp_state = _method(abp_fashion)
  srinf, srinf_state = _method(srinf_fashion)
  coop, coop_state = _method(coopnets_fashion)
  ebm, ebm_state = _method(ebm_fashion)
  key = jax.random.key(3)
  z0 = lambda m: jnp.zeros((8,) + m.nets.z_shape)
  return {
      'abp infer': lambda x: abp.infer(abp_state, x, key),
      'abp training chain': lambda x: abp.run_inference(abp_state, x, z0(abp), key, 3, 0.1)[0],
      'srinf infer': lambda x: srinf.infer(srinf_state, x, key),
      'srinf training chain': lambda x: srinf.chain(srinf_state, x, z0(srinf), key).position,
      'coopnets infer': lambda x: coop.infer(coop_state, x, key),
      'coopnets training z-chain': lambda x: coop.infer_latents(coop_state, x, z0(coop), key, 3),
      'coopnets revision': lambda x: coop.revise(coop_state, x, key)[0],
      'ebm chains': lambda x: ebm.run_chains(ebm_state, x, key)[0],
  }


CASES = _cases()


@pytest.mark.parametrize('name', sorted(CASES))
def test_example_i_does_not_depend_on_the_other_rows(name):
  first, second = _row0(CASES[name])
  np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_control_a_batchnorm_generator_in_training_mode_couples_the_chains():
  config = abp_fashion.get_config('smoke')
  nets = make_networks(config.model, SHAPE, 'generator')  # with BatchNorm
  state = base.init_network(nets.generator, optax.sgd(0.1),
                            jax.random.key(0), jnp.zeros((2,) + nets.z_shape))
  generate = lambda z: base.apply_network(nets.generator, state, z, train=True)[0]
  chain = lambda x: sampling.posterior_langevin(
      generate, x, jnp.zeros((8,) + nets.z_shape), jax.random.key(3), sigma=0.3, n_steps=3,
      **sampling.delta_steps(0.1))[0]
  first, second = _row0(chain)
  assert np.max(np.abs(first - second)) > 1e-4
