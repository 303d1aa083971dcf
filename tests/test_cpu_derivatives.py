"""egm.cpu: through a real energy network every convolution path (oneDNN, im2col + GEMM, lax
with the plain-convolution input gradient) gives the numbers of plain lax (`EGM_CPU=off`) for
`jax.jvp`, Hessian-vector products (forward over reverse), `jax.vmap` of the energy and of
per-example parameter gradients; and `EGM_CPU=off` leaves lax's own convolution."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egm.cpu import conv_impl, onednn_build
from egm.nets.energy import ConvEnergy

IMPLS = ['lax', 'matmul'] + (['onednn'] if onednn_build.available() else [])
MODEL = ConvEnergy(width=8)
X = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 3)), jnp.float32)
V = jnp.asarray(np.random.default_rng(1).standard_normal((4, 8, 8, 3)), jnp.float32)
PARAMS = MODEL.init(jax.random.key(0), X)


def derivatives(params, x, v):
  """The jvp of E in x along v, the Hessian-vector product of sum(E) in x, E by vmap over
  single examples, and per-example parameter gradients by vmap of grad."""
  energy = lambda x: MODEL.apply(params, x)
  total = lambda x: jnp.sum(energy(x))
  per_example = lambda p, xi: MODEL.apply(p, xi[None])[0]
  return {
      'jvp': jax.jvp(energy, (x,), (v,))[1],
      'hvp': jax.jvp(jax.grad(total), (x,), (v,))[1],
      'vmap': jax.vmap(lambda xi: energy(xi[None])[0])(x),
      'per_example_grads': jax.vmap(jax.grad(per_example), in_axes=(None, 0))(params, x),
  }


@pytest.fixture(scope='module')
def reference():
  """The derivatives with plain lax convolutions (EGM_CPU=off while tracing)."""
  with pytest.MonkeyPatch.context() as m:
    m.setenv('EGM_CPU', 'off')
    jaxpr = str(jax.make_jaxpr(derivatives)(PARAMS, X, V))
    assert 'egm_conv' not in jaxpr and 'conv_general_dilated' in jaxpr
    return jax.jit(derivatives)(PARAMS, X, V)


@pytest.mark.parametrize('impl', IMPLS)
def test_forward_mode_hvp_and_vmap_through_an_energy_equal_plain_lax(impl, reference):
  with conv_impl(impl):
    ours = jax.jit(derivatives)(PARAMS, X, V)
  for name in reference:
    for a, b in zip(jax.tree.leaves(ours[name]), jax.tree.leaves(reference[name])):
      scale = float(jnp.max(jnp.abs(b))) + 1e-12
      np.testing.assert_allclose(a, b, atol=2e-5 * scale, rtol=0, err_msg=f'{impl} {name}')
