"""Saved run configs load over the defaults: keys added after a run was saved get defaults."""
from configs import coopnets_fashion
from egm.config import defaults


def test_saved_values_win_and_missing_keys_take_defaults():
  saved = coopnets_fashion.get_config().to_dict()
  del saved['coopnets']['completion_samples']
  del saved['classifier']
  saved['coopnets']['step_size'] = 0.05
  config = defaults.with_defaults(saved)
  base = defaults.base_config()
  assert config.coopnets.completion_samples == base.coopnets.completion_samples
  assert config.classifier.to_dict() == base.classifier.to_dict()
  assert config.coopnets.step_size == 0.05
  assert config.data.image_size == 28 and config.method == 'coopnets'
