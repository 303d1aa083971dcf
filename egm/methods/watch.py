"""What the divergence guard (egm/run/guard.py) watches in a method, and the cheap in-update
statistics behind it.

A method declares a `Watch` as its class attribute `watch`: which of its update's metrics
are mean energies, gradient norms, the data − sample energy gap, the fraction of chain
coordinates at the clamp and the spread of its generator's outputs, and the config keys
that most often cause each failure (named in the guard's diagnosis). The statistics
below are computed inside the jitted update, so the guard reads them from the metrics
the trainer already fetches: no extra transfers per step.
"""
import dataclasses

import jax.numpy as jnp
import optax

# Failure kinds the guard detects (egm/run/guard.py), each with its own knobs in `Watch.knobs`.
KINDS = ('non_finite', 'energy', 'grad_norm', 'energy_gap', 'flat_energy', 'clamp', 'collapse')


@dataclasses.dataclass(frozen=True)
class Watch:
  """A method's declaration for the divergence guard.

  Attributes:
    energies: metrics that are mean energies; |E| > guard.max_abs_energy is an explosion.
    grad_norms: metrics that are gradient norms (of parameters or of chains).
    energy_gap: (data, sample) mean-energy metric names; their difference is the gap.
    clamp_fraction: metric of the fraction of chain coordinates at the clamp ('' if none).
    data_clamp_fraction: metric of the data's own fraction of coordinates at the clamp's
      bounds ('' if none): the clamp check counts only the excess over it.
    spread: metric of the spread of the generator's outputs over the data's ('' if none).
    learning_rates: dotted config keys of the learning rates a rollback lowers; () means
      the lr of every network of the method (`<method>.optim.<network>.lr`).
    knobs: failure kind (KINDS) -> dotted config keys to name in the diagnosis.
  """
  energies: tuple[str, ...] = ()
  grad_norms: tuple[str, ...] = ()
  energy_gap: tuple[str, str] | None = None
  clamp_fraction: str = ''
  data_clamp_fraction: str = ''
  spread: str = ''
  learning_rates: tuple[str, ...] = ()
  knobs: dict = dataclasses.field(default_factory=dict)


def gradient_norms(grads: dict) -> dict:
  """{'grad_norm_<network>': global L2 norm of its gradient (scalar)} for grads {network: tree}."""
  return {f'grad_norm_{name}': optax.tree.norm(g) for name, g in grads.items()}


def spread_ratio(x, reference, mask=None):
  """Root mean pairwise squared distance of the rows of x over that of `reference`: scalar.

  x, reference: (B, ...); `mask` (1 = observed, broadcasting to both): only observed
  entries count. The mean pairwise squared distance of n rows is
  2n/(n − 1) times their mean squared distance from their centroid, so this costs O(B·D);
  0 when every row of x is the same (a collapsed generator), about 1 when x spreads as
  the data does.
  """
  def mean_sq_distance_from_centroid(a):
    a = a.reshape(a.shape[0], -1)
    return jnp.mean(jnp.sum(jnp.square(a - jnp.mean(a, axis=0)), axis=1))

  if mask is not None:
    x, reference = x * mask, reference * mask
  return jnp.sqrt(mean_sq_distance_from_centroid(x)
                  / jnp.maximum(mean_sq_distance_from_centroid(reference), 1e-12))


def clamp_fraction(x, clip):
  """The fraction of the coordinates of x at either bound of `clip` (lo, hi): scalar in [0, 1]."""
  lo, hi = clip
  at_bound = (x <= lo + 1e-6) | (x >= hi - 1e-6)
  return jnp.mean(at_bound.astype(jnp.float32))

