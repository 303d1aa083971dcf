"""Name registries (methods, networks, metrics, data sources) refuse a name registered twice."""
from egm.errors import EgmError


def _where(obj) -> str:
  """`module.QualName` of a registered class or function."""
  return f'{getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", repr(obj))}'


def add_to_registry(registry: dict, kind: str, name: str, obj) -> None:
  """Adds `obj` under `name`; a second registration of the name is an error naming both."""
  if name in registry:
    raise EgmError(f'Duplicate {kind} name {name!r}: {_where(obj)} is registered under it, but '
                   f'so is {_where(registry[name])}. Give one of them another name.')
  registry[name] = obj
