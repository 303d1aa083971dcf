"""The metrics registry: `@register_metric(name, needs...)` functions `(context) -> dict`.

Each metric declares what it needs (method functions, image or point data, labels, a test
split, a feature network, Inception weights, config keys that must be set);
`evaluate.run_metrics` runs, in registration order, the metrics named by
`config.eval.metrics` ('all': every applicable one). A named metric whose needs are not met
is skipped with a note that says why (one list can serve several methods). The built-in
metrics (egm/evaluation/metrics/) import this module to register; it imports none of them.
"""
import dataclasses
from typing import Callable

from egm.methods.contract import has_capability
from egm.registry import add_to_registry


@dataclasses.dataclass(frozen=True)
class Needs:
  """What a metric needs to apply.

  Attributes:
    methods: capabilities the method must declare (egm/methods/contract.py), e.g.
      ('sample', 'energy').
    any_of: capabilities of which the method must declare at least one.
    kind: 'image' or 'points' data, or None for either.
    labels: the test split carries class labels.
    test: the data set has a test split.
    features: `eval.feature_workdir` names a trained classifier (feature network).
    inception: Inception weights are given (`eval.inception_weights` or the environment).
    config: dotted config keys that must be set (non-zero, non-empty and not 'none').
  """
  methods: tuple[str, ...] = ()
  any_of: tuple[str, ...] = ()
  kind: str | None = None
  labels: bool = False
  test: bool = False
  features: bool = False
  inception: bool = False
  config: tuple[str, ...] = ()

  def unmet(self, context) -> str | None:
    """Why the metric does not apply to `context`, or None when it does."""
    missing = [m for m in self.methods if not has_capability(context.method, m)]
    if missing:
      return f'method {context.config.method!r} has no {", ".join(missing)}'
    if self.any_of and not any(has_capability(context.method, m) for m in self.any_of):
      return f'method {context.config.method!r} has none of {", ".join(self.any_of)}'
    if self.kind and context.dataset.kind != self.kind:
      return f'it needs {self.kind} data, not {context.dataset.kind}'
    if (self.test or self.labels) and context.dataset.test is None:
      return 'the data set has no test split'
    if self.labels and context.dataset.test.label is None:
      return 'the test split has no labels'
    if self.features and not context.config.eval.feature_workdir:
      return 'no feature network: set --config.eval.feature_workdir to a classifier run'
    if self.inception and not context.inception_weights:
      return 'no Inception weights: set --config.eval.inception_weights or $EGM_INCEPTION_WEIGHTS'
    for key in self.config:
      value = context.config
      for part in key.split('.'):
        value = value[part]
      if not value or value == 'none':
        return f'config.{key} is not set'
    return None


@dataclasses.dataclass(frozen=True)
class Metric:
  name: str
  fn: Callable[..., dict]
  needs: Needs


METRICS: dict[str, Metric] = {}


def register_metric(name: str, **needs):
  """Decorator: registers `fn(context) -> dict` under `name` with `Needs(**needs)`."""
  def add(fn):
    add_to_registry(METRICS, 'metric', name, Metric(name, fn, Needs(**needs)))
    return fn
  return add
