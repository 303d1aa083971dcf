"""Networks that grow between training phases (a method's `enter_phase`): the trained
parameters and their optimiser state carry over into the larger network, its new layers start
fresh, and a fade-in weight α (`contract.fade_in`, 0 → 1 over the phase's `fade_in_steps`)
blends the new path in.

A growing network keeps the names of the layers it had (flax names them by position unless
`name=` is given: name the layers of each resolution, e.g. `from_rgb_8`, `block_8`), so a
carried layer has the same path and shape in the old and the grown parameters; every other
leaf is new. The grown network called with α = 0 must compute the old network (on the old
input, e.g. the downsampled image): `fade(alpha, old_path, new_path)` is the blend that does.

Optimiser state carries over leaf by leaf on the same rule: Adam's moments of the carried
parameters, its step count and the learning-rate schedule continue; the new parameters'
moments start at zero under the continued count, so their first steps are not
bias-corrected (larger than lr, like any Adam step after zero-initialised moments with a
large count). `reset_optimizer=True` starts the whole optimiser state afresh instead.
"""
import jax
import jax.numpy as jnp

from egm.methods import base


def _by_path(tree) -> dict:
  return {jax.tree_util.keystr(path): leaf
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def carry_over(old, new):
  """`new` (a pytree) with each leaf whose path, shape and dtype also occur in `old` taken
  from `old`."""
  previous = _by_path(old)

  def pick(path, leaf):
    carried = previous.get(jax.tree_util.keystr(path))
    same = (carried is not None and jnp.shape(carried) == jnp.shape(leaf)
            and jnp.result_type(carried) == jnp.result_type(leaf))
    return carried if same else leaf

  return jax.tree_util.tree_map_with_path(pick, new)


def new_leaves(old, new) -> list[str]:
  """The paths of the leaves of `new` that `carry_over` does not take from `old`."""
  previous = _by_path(old)
  return [path for path, leaf in _by_path(new).items()
          if path not in previous or jnp.shape(previous[path]) != jnp.shape(leaf)]


def grow(old_net: dict, module, optimizer, key, *inputs, reset_optimizer: bool = False,
         **kwargs) -> dict:
  """The network state `{'params', 'opt_state', 'batch_stats'?}` of `module` (the grown
  network, initialised from `key` on `inputs`) with `old_net`'s parameters, optimiser state
  and batch statistics carried over where their paths and shapes match."""
  fresh = base.init_network(module, optimizer, key, *inputs, **kwargs)
  params = carry_over(old_net['params'], fresh['params'])
  grown = {'params': params,
           'opt_state': (optimizer.init(params) if reset_optimizer
                         else carry_over(old_net['opt_state'], fresh['opt_state']))}
  if 'batch_stats' in fresh:
    grown['batch_stats'] = carry_over(old_net.get('batch_stats', {}), fresh['batch_stats'])
  return grown


def fade(alpha, old, new):
  """(1 − α)·old + α·new: the old path alone at α = 0, the new one at α = 1."""
  return old + alpha * (new - old)
