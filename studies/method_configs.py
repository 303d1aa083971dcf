"""The config each generative method runs a study with: its own Fashion-MNIST config, else the
triangle's with `--config.method=<method>`."""
import os

from egm.errors import EgmError


def entries(methods=()) -> list[tuple[str, str, list[str]]]:
  """(method, config file, extra overrides) for each generative method (or those named)."""
  from egm.methods import generative_methods
  names = generative_methods()
  unknown = sorted(set(methods) - set(names))
  if unknown:
    raise EgmError(f'Unknown or non-generative methods {unknown}; choose from {names}.')
  out = []
  for name in methods or names:
    own = f'configs/{name}_fashion.py'
    if os.path.exists(own):
      out.append((name, own, []))
    else:
      out.append((name, 'configs/triangle_fashion.py', [f'--config.method={name}']))
  return out
