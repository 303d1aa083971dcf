"""The hierarchical generators of srinf (egm/nets/hierarchical.py): every latent layer reaches
the output, and a layer list that does not fit the image is refused naming the key."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import srinf_fashion
from egm.errors import EgmError
from egm.methods import DataSpec, make_method
from egm.nets import make_networks
from egm.nets.hierarchical import max_layers


def _model(dims, width=8):
  model = ml_collections.ConfigDict({'architecture': 'auto', 'z_dim': 8, 'width': width,
                                     'mlp_depth': 3, 'latent_dims': dims})
  return model


@pytest.mark.parametrize('x_shape', [(16, 16, 3), (28, 28, 1), (8,)])
def test_hierarchical_generator_uses_every_layer(x_shape):
  dims = '3,4,5' if len(x_shape) == 3 else '2,3'
  nets = make_networks(_model(dims), x_shape, 'hierarchical_generator')
  d = sum(int(v) for v in dims.split(','))
  assert nets.z_shape == (d,)
  g = nets.hierarchical_generator
  z = jax.random.normal(jax.random.key(0), (2, d))

  @jax.jit  # one compile for init, forward and the gradient with respect to z
  def run(z):
    params = g.init(jax.random.key(1), z)
    return g.apply(params, z), jax.grad(lambda z: jnp.sum(g.apply(params, z)))(z)

  out, jac = run(z)
  assert out.shape == (2,) + x_shape
  if len(x_shape) == 3:
    assert float(jnp.max(jnp.abs(out))) <= 1.0
  bounds = np.cumsum([0] + [int(v) for v in dims.split(',')])
  for lo, hi in zip(bounds[:-1], bounds[1:]):  # each layer's latent reaches the output
    assert float(jnp.max(jnp.abs(jac[:, lo:hi]))) > 0


def test_a_latent_layer_list_that_does_not_fit_the_image_is_refused():
  assert (max_layers(32), max_layers(28), max_layers(8), max_layers(64)) == (6, 3, 4, 7)
  config = srinf_fashion.get_config()
  config.srinf.latent_dims = '16,16,16,16'
  with pytest.raises(EgmError, match=r'srinf.latent_dims has 4 latent layers for 28x28 images'
                                     r'.*At most 3 layers fit 28 px.*data.image_size'):
    make_method(config, DataSpec.of((28, 28, 1), num_examples=64, global_batch=16))
  with pytest.raises(EgmError, match='model.latent_dims has 7 latent layers'):
    make_networks(_model('1,1,1,1,1,1,1'), (32, 32, 3), 'hierarchical_generator')
