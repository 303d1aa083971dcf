"""A saved run's config.json in today's keys: keys that were renamed or moved since."""
import copy

# Shared learning rates per network became each method's own (egm/methods/optim.py).
_NETWORK_LRS = ('energy', 'generator', 'encoder')


def migrate(saved: dict) -> dict:
  """A copy of a config.json dict with moved keys at their new places and removed ones
  dropped: `optim.lr_<network>` -> `<method>.optim.<network>.lr`, `srinf.lr_step_size` ->
  `srinf.optim.step_size.lr`, `classifier.lr` -> `classifier.optim.classifier.lr`;
  `model.conv_impl` (now `egm.cpu.conv_impl`, not part of a run's config) is dropped."""
  config = copy.deepcopy(saved)
  method = config.get('method', 'triangle')
  shared = config.get('optim', {})
  section = config.setdefault(method, {})
  for network in _NETWORK_LRS:
    lr = shared.pop(f'lr_{network}', None)
    if lr is not None and network in _networks_of(method):
      section.setdefault('optim', {}).setdefault(network, {})['lr'] = lr
  for name, old, network in (('srinf', 'lr_step_size', 'step_size'),
                             ('classifier', 'lr', 'classifier')):
    if isinstance(config.get(name), dict) and old in config[name]:
      lr = config[name].pop(old)
      config[name].setdefault('optim', {}).setdefault(network, {})['lr'] = lr
  config.get('model', {}).pop('conv_impl', None)
  if not section:
    del config[method]
  return config


def _networks_of(method: str) -> tuple[str, ...]:
  """The networks the registered method `method` declares optimiser settings for."""
  from egm.methods import contract
  cls = contract.registered_methods().get(method)
  section = cls.config_section() if cls is not None else None
  return tuple(section.optim) if section is not None and 'optim' in section else ()
