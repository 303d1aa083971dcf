"""The method contract (DESIGN.md §3): what every method is, what it may declare, the registry.

A method is a small object of pure functions over one state pytree:

  init(key, example_batch) -> state
  update(state, batch, key) -> (state, metrics)          # jitted once per phase
  sample(state, key, n) -> x (n, ...)                    # generative methods

plus the named capabilities it declares in `capabilities` (each a method of the same
name with the signature in `CAPABILITIES`; evaluation asks `has_capability`, never
`hasattr`). The state is `{network name: {params, opt_state, batch_stats?}, 'step': (),
'per_example'?: {...}}`: arrays under `per_example` have one row per training example (or
per chain of a buffer) on axis 0 and are sharded on the mesh's `data` axis; the rest is
replicated. Batches carry `index` (B,), each example's row in its split, so an update can
read and write its rows of `per_example` inside the jitted step.

A method owns its configuration: `config_section()` returns its section's defaults (the
base config is assembled from the registry) and `smoke(section)` shrinks it. It sees its
section (`self.hp`), the shared `model` and `optim` sections, and a `DataSpec`; never the
whole config. The optimiser settings of its networks live in its own section
(`<method>.optim.<network>`, `optim.network_settings`) over the shared `optim` defaults, and
`self.optimizer(name)` builds one. A method may declare training phases (`phases`); the
trainer re-jits its update once per phase.
"""
import abc
import copy
import dataclasses
from typing import Any, ClassVar

import jax.numpy as jnp
import ml_collections

from egm.errors import EgmError
from egm.methods import optim
from egm.methods.watch import Watch
from egm.registry import add_to_registry

PER_EXAMPLE = 'per_example'

# Capability name -> its signature; every capability that can involve randomness takes a key.
CAPABILITIES = {
    'energy': 'energy(state, x) -> (B,) energies, lower = more likely',
    'reconstruct': 'reconstruct(state, batch, key) -> x: batch {x, mask?} (mask 1 = observed)',
    'infer': 'infer(state, x, key) -> z (B, *z_shape): latents of x (posterior mean or sample)',
    'generate': 'generate(state, z) -> x: decodes latents',
    'complete': 'complete(state, x, mask, key) -> x with the mask-0 pixels filled',
    'long_run': 'long_run(state, key, n, n_steps, metropolis) -> (x, LangevinInfo)',
    'trajectory': 'trajectory(state, key, n, frames) -> (frames + 1, n, ...) states of the '
                  "method's own sampling chain",
    'cluster': 'cluster(state, x, key) -> (B,) int cluster ids',
    'translate': 'translate(state, x, key) -> x of the target domain',
    'synthesize': 'synthesize(state, key, n, side) -> (n, side, side, C) textures',
    'proposals': 'generator_sample(state, key, n) and revise(state, x, key) -> (x, info)',
    'logits': 'logits(state, x) -> (B, num_classes)',
    'features': 'features(state, x) -> (B, F) embedding',
}
# Capabilities whose function is named differently from the capability.
_FUNCTIONS = {'proposals': ('generator_sample', 'revise')}


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What a method knows of its data.

  Attributes:
    x_shape: per-example shape, (D,) for points or (H, W, C) for images in [-1, 1].
    num_examples: rows of the training split (the rows of `per_example` state).
    global_batch: examples per update, summed over devices and processes.
    steps_per_epoch: updates per pass over the training split.
  """
  x_shape: tuple[int, ...]
  num_examples: int
  global_batch: int
  steps_per_epoch: int

  @classmethod
  def of(cls, x_shape, num_examples: int = 1000, global_batch: int = 100) -> 'DataSpec':
    """A spec for data of `x_shape` with `num_examples` rows (tests, benchmarks)."""
    return cls(tuple(x_shape), num_examples, global_batch, max(1, num_examples // global_batch))

  @property
  def is_image(self) -> bool:
    return len(self.x_shape) == 3

  @property
  def per_example_rows(self) -> int:
    """Rows of per-example state: num_examples rounded up to a multiple of the global batch,
    so the rows shard evenly on every device count the batch allows."""
    return -(-self.num_examples // self.global_batch) * self.global_batch


@dataclasses.dataclass(frozen=True)
class Phase:
  """One stage of training (e.g. one resolution of a growing model).

  Attributes:
    name: shown in logs.
    num_steps: updates in this phase; None for the last phase (until train.num_steps).
    batch_size: global batch of this phase; None for train.batch_size.
    image_size: side the data pipeline serves in this phase; None for data.image_size.
    fade_in_steps: steps over which `fade_in(step)` rises from 0 to 1 at the phase start.
  """
  name: str = 'train'
  num_steps: int | None = None
  batch_size: int | None = None
  image_size: int | None = None
  fade_in_steps: int = 0


def phase_start(phases, index: int) -> int:
  """The step at which phase `index` of `phases` starts."""
  return sum(p.num_steps for p in phases[:index])


def fade_in(phases, index: int, step):
  """0 → 1 over phase `index`'s `fade_in_steps` from its start (1 without a fade-in); jittable."""
  steps = phases[index].fade_in_steps
  if not steps:
    return jnp.ones(())
  return jnp.clip((step - phase_start(phases, index)) / steps, 0.0, 1.0)


class Method(abc.ABC):
  """The abstract base of every method; subclasses are registered with `@register(name)`.

  Class attributes:
    name: the registered name (`config.method`), set by `register`.
    generative: False for methods that are not generative models (the classifier): they
      train with train.py but are not listed where generative methods are.
    capabilities: the names from CAPABILITIES this method implements.
    watch: what the divergence guard checks in its update's metrics (egm/methods/watch.py).

  Instance attribute:
    phase: the training phase this object computes in (0 until `at_phase`): its capabilities
      (`sample`, `energy`, ...) and its update act on that phase's state. The phase is static
      (it fixes shapes), so each phase's functions compile once.
  """
  name: ClassVar[str] = ''
  generative: ClassVar[bool] = True
  capabilities: ClassVar[frozenset[str]] = frozenset()
  watch: ClassVar[Watch] = Watch()

  def __init__(self, hp, model, optim, data: DataSpec):
    """hp: this method's config section; model, optim: the shared sections; data: DataSpec."""
    self.hp = hp
    self.model_config = model
    self.optim_config = optim
    self.data = data
    self.phase = 0
    self.setup()

  def setup(self) -> None:
    """Builds networks and optimisers from `self.hp`, `self.model_config`, ...; checks them."""

  def optimizer(self, name: str):
    """The optax transform of network `name`: its settings in this method's section
    (`<method>.optim.<name>`, declared with `optim.network_settings`) over `config.optim`."""
    return optim.make_optimizer(optim.settings(self.hp, self.optim_config, name),
                                self.data.steps_per_epoch)

  @staticmethod
  def config_section() -> ml_collections.ConfigDict | None:
    """This method's config section with its defaults (None: the method has no keys)."""
    return None

  @staticmethod
  def smoke(section: ml_collections.ConfigDict) -> None:
    """Shrinks this method's section in place for a seconds-long run (`:smoke`)."""

  @abc.abstractmethod
  def init(self, key, example_batch: dict) -> Any:
    """The initial state from a key and a few training examples ({'x', ...}, leading axis B)."""

  @abc.abstractmethod
  def update(self, state, batch: dict, key) -> tuple[Any, dict]:
    """One training step on a global batch; returns (new state, scalar metrics)."""

  def sample(self, state, key, n: int):
    """n model samples (n, ...); generative methods implement it."""
    raise NotImplementedError(f'method {self.name!r} does not sample')

  def density_temperature(self) -> float:
    """T of the model density exp(−E/T) the method trains and samples (methods with `energy`;
    1 unless its chains run at another temperature)."""
    return 1.0

  def phases(self, num_steps: int) -> tuple[Phase, ...]:
    """The training phases of a `num_steps` run; one phase unless the method grows."""
    return (Phase(num_steps=None),)

  def at_phase(self, phase_index: int) -> 'Method':
    """This method computing in phase `phase_index` (a copy with `phase` set; itself when it
    already is)."""
    if phase_index == self.phase:
      return self
    bound = copy.copy(self)
    bound.phase = phase_index
    return bound

  def update_fn(self, phase_index: int):
    """The update to jit in phase `phase_index`: (state, batch, key) -> (state, metrics)."""
    return self.at_phase(phase_index).update

  def enter_phase(self, state, phase_index: int, key):
    """The state at the start of phase `phase_index` from the end of the previous one
    (`init` gives the state of phase 0)."""
    del phase_index, key
    return state


def has_capability(method, name: str) -> bool:
  """Whether `method` declares capability `name` (core functions count: `sample`, ...)."""
  if name == 'sample':
    return bool(getattr(method, 'generative', False))
  return name in getattr(method, 'capabilities', ())


def check_capabilities(cls) -> None:
  """Raises EgmError unless every declared capability is known and implemented by `cls`."""
  for capability in cls.capabilities:
    if capability not in CAPABILITIES:
      raise EgmError(f'Method {cls.__qualname__} declares the unknown capability {capability!r}; '
                     f'the known ones are {sorted(CAPABILITIES)} (egm/methods/contract.py).')
    for function in _FUNCTIONS.get(capability, (capability,)):
      if not callable(getattr(cls, function, None)):
        raise EgmError(f'Method {cls.__qualname__} declares {capability!r} but has no '
                       f'{function}(): {CAPABILITIES[capability]}.')


METHODS: dict[str, type] = {}


def register(name: str):
  """Class decorator: makes a Method subclass constructible by `config.method = name`."""
  def add(cls):
    if not (isinstance(cls, type) and issubclass(cls, Method)):
      raise EgmError(f'{cls!r} registered as method {name!r} is not a subclass of '
                     'egm.methods.contract.Method.')
    check_capabilities(cls)
    add_to_registry(METHODS, 'method', name, cls)
    cls.name = name
    return cls
  return add


def registered_methods() -> dict[str, type]:
  """Every registered method class by name (importing the built-in ones first)."""
  import egm.methods  # noqa: F401  (registers the built-in methods)
  return dict(METHODS)


def generative_methods() -> list[str]:
  """The names of the registered generative methods, sorted."""
  return sorted(n for n, cls in registered_methods().items() if cls.generative)


def make_method(config, data: DataSpec) -> Method:
  """Builds the method named by `config.method` with its own section and `data`."""
  methods = registered_methods()
  if config.method not in methods:
    raise EgmError(
        f'Unknown method {config.method!r}. Choose one of {sorted(methods)} with '
        '--config.method=NAME, or register a new one with @egm.methods.register(NAME).')
  cls = methods[config.method]
  hp = config[config.method] if config.method in config else ml_collections.ConfigDict()
  return cls(hp, config.model, config.optim, data)
