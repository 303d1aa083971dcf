"""egm.cpu.onednn_sharding: on a mesh of several devices oneDNN's convolution runs on each
device's slice of the batch (no gather of activations), the kernel gradient sums the slices,
and values and gradients equal a float64 lax convolution's; a batch the mesh does not divide
and `jax.vmap` still give lax's values; each device's calls run on its share of the cores."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from egm.cpu import onednn_build, onednn_conv, onednn_sharding

DEVICES = 8
DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')
STRIDES, PADDING = (2, 2), ((1, 1), (1, 1))


@pytest.fixture(scope='module', autouse=True)
def mesh():
  ok, why = onednn_build.status()
  if not ok:
    pytest.skip(f'oneDNN is not available here: {why}')
  if jax.device_count() < DEVICES:
    pytest.skip(f'needs {DEVICES} devices (the test session forces them)')
  return Mesh(np.array(jax.devices()[:DEVICES]), ('data',))


def normal(seed: int, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def loss_and_gradients(convolution):
  """(x, kernel, target) -> (sum((conv - target)^2), d/dx, d/dkernel)."""
  def loss(x, kernel, target):
    return jnp.sum(jnp.square(convolution(x, kernel) - target))
  return jax.value_and_grad(loss, argnums=(0, 1))


def onednn(x, kernel):
  return onednn_conv.conv(x, kernel, STRIDES, PADDING)


def lax64(x, kernel):
  return lax.conv_general_dilated(x.astype(jnp.float64), kernel.astype(jnp.float64), STRIDES,
                                  PADDING, dimension_numbers=DIMENSIONS)


@pytest.mark.parametrize('batch', [16, 12], ids=['sharded', 'replicated_indivisible'])
def test_batch_sharded_values_and_gradients_equal_float64_lax(mesh, batch):
  x, kernel = normal(0, (batch, 8, 8, 3)), normal(1, (4, 4, 3, 5))
  target = normal(2, (batch, 4, 4, 5))
  rows = NamedSharding(mesh, PartitionSpec('data') if batch % DEVICES == 0 else PartitionSpec())
  args = (jax.device_put(x, rows), jax.device_put(kernel, NamedSharding(mesh, PartitionSpec())),
          jax.device_put(target, rows))
  run = jax.jit(loss_and_gradients(onednn))
  compiled = run.lower(*args).compile().as_text()
  assert onednn_conv.KERNEL_GRAD in compiled and 'all-gather' not in compiled
  if batch % DEVICES == 0:
    assert 'all-reduce' in compiled  # the devices' partial kernel gradients are summed
  value, (dx, dkernel) = run(*args)
  assert dx.sharding.is_equivalent_to(rows, dx.ndim)
  with jax.enable_x64():
    ref_value, (ref_dx, ref_dkernel) = loss_and_gradients(lax64)(x, kernel, target)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  np.testing.assert_allclose(dx, ref_dx, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(dkernel, ref_dkernel, rtol=1e-4, atol=1e-3)


def test_vmap_over_a_sharded_call_runs_slice_by_slice(mesh):
  x, kernel = normal(3, (2, DEVICES, 6, 6, 3)), normal(4, (4, 4, 3, 2))
  x = jax.device_put(x, NamedSharding(mesh, PartitionSpec(None, 'data')))
  fast = jax.jit(jax.vmap(onednn, in_axes=(0, None)))(x, kernel)
  with jax.enable_x64():
    ref = jax.vmap(lax64, in_axes=(0, None))(np.asarray(x), kernel)
  np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-5)


def test_each_devices_calls_get_its_share_of_the_cores(mesh, monkeypatch):
  """8 devices of one process on 2 cores: 1 OpenMP thread per call; on 16 cores: 2."""
  x, kernel = normal(5, (DEVICES, 6, 6, 3)), normal(6, (3, 3, 3, 4))
  for cores, threads in ((2, 1), (16, 2)):
    monkeypatch.setattr(onednn_sharding.os, 'sched_getaffinity', lambda pid, n=cores: set(range(n)))
    assert onednn_sharding.threads_per_call() == threads
    text = jax.jit(lambda x, k: onednn(x, k)).lower(x, kernel).as_text()  # a fresh trace
    assert f'threads = {threads} : i64' in text
  monkeypatch.setattr(jax, 'device_count', lambda: 1)
  text = jax.jit(lambda x, k: onednn(x, k)).lower(x, kernel).as_text()
  assert 'threads = 0 : i64' in text  # OpenMP's default
