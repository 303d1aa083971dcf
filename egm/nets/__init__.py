"""Networks as flax.linen modules, built by name from a registry (see registry.py).

A method asks for the roles it needs (`make_networks(model, x_shape, 'energy',
'generator')`); the family (MLP for points, ConvNet for images, fully convolutional
texture nets) comes from the data shape and `model.architecture`.
"""
from egm.nets import builders  # noqa: F401  (registers the built-in networks)
from egm.nets import hierarchical  # noqa: F401  (registers the hierarchical generators)
from egm.nets.builders import energy_dtype, texture_energy_stages, texture_latent_shape
from egm.nets.registry import NETWORKS, Networks, build_network, make_networks, register_network

__all__ = ['NETWORKS', 'Networks', 'build_network', 'energy_dtype', 'make_networks',
           'register_network', 'texture_energy_stages', 'texture_latent_shape']
