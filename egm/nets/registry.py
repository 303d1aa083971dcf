"""The registry of network builders: `@register_network(name)` functions
(model, x_shape, **options) -> module.

A builder named `<family>_<role>` (e.g. `conv_energy`, `mlp_generator`,
`texture_generator`) builds the network of that role for data of per-example shape
`x_shape` from the `config.model` section; keyword `options` are what the method asks of it
(e.g. `batch_norm=False` for a generator a Langevin chain differentiates, `spectral_norm=True`
for an energy), each a keyword argument of the builder. Generator builders also give the
latent shape they take (`latent_shape`). `make_networks` picks the family from the data
shape and `model.architecture` and builds the roles a method names.
"""
import inspect
import dataclasses
from typing import Callable

import flax.linen as nn

from egm.errors import EgmError
from egm.registry import add_to_registry


@dataclasses.dataclass(frozen=True)
class Builder:
  """build(model_config, x_shape) -> nn.Module; latent_shape(model_config, x_shape) -> z shape."""
  build: Callable[..., nn.Module]
  latent_shape: Callable[..., tuple[int, ...]] | None = None


NETWORKS: dict[str, Builder] = {}


def register_network(name: str, latent_shape=None):
  """Decorator: registers `build(model_config, x_shape) -> nn.Module` under `name`."""
  def add(build):
    if name in NETWORKS:  # name the two functions, not their Builder wrappers
      add_to_registry({name: NETWORKS[name].build}, 'network', name, build)
    NETWORKS[name] = Builder(build, latent_shape)
    return build
  return add


def build_network(name: str, model_config, x_shape, **options) -> nn.Module:
  """The network registered as `name` for data of shape `x_shape`, with the builder's
  keyword `options`."""
  if name not in NETWORKS:
    raise EgmError(f'Unknown network {name!r}; registered: {sorted(NETWORKS)} '
                   '(egm/nets/builders.py; add one with @egm.nets.register_network).')
  build = NETWORKS[name].build
  known = [p for p in inspect.signature(build).parameters][2:]
  unknown = sorted(set(options) - set(known))
  if unknown:
    raise EgmError(f'The network {name!r} takes no option {", ".join(unknown)}; its options: '
                   f'{known or "none"}.')
  return build(model_config, tuple(x_shape), **options)


@dataclasses.dataclass(frozen=True)
class Networks:
  """The networks a method asked for, by role (`nets.energy`, `nets.generator`, ...).

  `z_shape` is the per-example latent shape the generator takes (None without one).
  """
  modules: dict
  z_shape: tuple[int, ...] | None = None

  def __getattr__(self, role):
    modules = self.__dict__.get('modules', {})
    if role in modules:
      return modules[role]
    raise AttributeError(f'no {role!r} network; built: {sorted(modules)}')


IMAGE_FAMILIES = ('texture', 'resnet', 'dcgan')


def family(model_config, x_shape) -> str:
  """'mlp' for points (D,), 'conv' for square images; 'texture' or 'resnet' when asked for
  images."""
  x_shape = tuple(x_shape)
  is_image = len(x_shape) == 3 and x_shape[0] == x_shape[1] and x_shape[2] in (1, 3)
  if model_config.architecture not in ('auto',) + IMAGE_FAMILIES:
    raise EgmError(
        f'config.model.architecture is {model_config.architecture!r}; it must be auto '
        '(MLPs for points, ConvNets for images), texture (fully convolutional nets), resnet '
        '(residual nets) or dcgan (the triangle\'s reference nets). Fix '
        '--config.model.architecture.')
  if model_config.architecture in IMAGE_FAMILIES and is_image:
    return model_config.architecture
  if model_config.architecture == 'auto' and len(x_shape) == 1:
    return 'mlp'
  if model_config.architecture == 'auto' and is_image:
    return 'conv'
  raise EgmError(
      f'No network family for data of shape {x_shape}: egm builds MLPs for 2-D points '
      '(shape (D,)) and ConvNets for square images (S, S, 1 or 3). Set config.data.image_size '
      'and config.data.channels to get square images.')


def make_networks(model_config, x_shape, *roles: str, options: dict | None = None) -> Networks:
  """The networks of `roles` (e.g. 'energy', 'generator', 'encoder') for `x_shape` data;
  `options` {role: {option: value}} go to the roles' builders (`build_network`)."""
  fam = family(model_config, x_shape)
  modules, z_shape = {}, None
  for role in roles:
    name = f'{fam}_{role}'
    if name not in NETWORKS:
      raise EgmError(f'The {fam} network family has no {role} (no network {name!r} is '
                     f'registered); this method needs one. Registered: {sorted(NETWORKS)}.')
    modules[role] = build_network(name, model_config, x_shape, **(options or {}).get(role, {}))
    if NETWORKS[name].latent_shape is not None:
      z_shape = NETWORKS[name].latent_shape(model_config, tuple(x_shape))
  return Networks(modules, z_shape)
