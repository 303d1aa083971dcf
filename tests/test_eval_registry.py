"""The metrics registry end to end: a classifier as feature network, feature/task metrics,
figures, and the errors for bad input."""
import json
import os
import shutil

import numpy as np
import pytest

from configs import classifier_fashion, ebm_fashion, triangle_fashion
from egm.errors import EgmError
from egm.evaluation import evaluate, inception, registry
from egm.evaluation.feature_net import load_feature_net
from egm.run import experiment, trainer


def _write_npz(path, seed: int, n: int = 64, n_test: int = 64):
  """Grey 28x28 images whose label (0/1) is their brightness: learnable in a few steps."""
  rng = np.random.default_rng(seed)
  def split(m):
    label = rng.integers(0, 2, m).astype(np.int32)
    x = rng.integers(0, 100, (m, 28, 28), np.uint8) + (label * 150).astype(np.uint8)[:, None, None]
    return x, label
  (x, label), (x_test, label_test) = split(n), split(n_test)
  np.savez(path, x=x, label=label, x_test=x_test, label_test=label_test)
  return f'npz:{path}'


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('runs')
  source = _write_npz(root / 'data.npz', 0)
  config = classifier_fashion.get_config('smoke')
  config.data.source = source
  config.train.num_steps = 30
  trainer.train(config, str(root / 'classifier'))
  return {'root': root, 'source': source, 'classifier': str(root / 'classifier'),
          'classifier_results': evaluate.evaluate(config, str(root / 'classifier'))}


def _generative_config(runs, method='vae', base=triangle_fashion):
  config = base.get_config('smoke')
  config.method = method
  config.data.source = runs['source']
  config.eval.feature_workdir = runs['classifier']
  return config


def test_classifier_learns_and_reports_test_accuracy(runs):
  results = runs['classifier_results']
  assert results['method'] == 'classifier' and results['test_accuracy'] >= 0.9
  assert os.path.exists(os.path.join(runs['classifier'], 'eval', 'loss_curves.png'))


def test_feature_metrics_and_figures_named_after_the_classifier(runs):
  config = _generative_config(runs)
  workdir = runs['root'] / 'vae'
  trainer.train(config, str(workdir))
  results = evaluate.evaluate(config, str(workdir))
  for name in ('fid', 'kid', 'precision', 'recall'):
    assert np.isfinite(results[f'{name}_fashion_classifier']), name
  assert 'fid' not in results and 'kid' not in results
  assert results['fid_fashion_classifier'] > 0 and 0 <= results['recall_fashion_classifier'] <= 1
  assert np.isfinite(results['rec_mse'])
  figures = set(os.listdir(workdir / 'eval'))
  assert {'samples.png', 'reconstructions.png', 'interpolations.png', 'neighbours_pixel.png',
          'neighbours_fashion_classifier.png', 'loss_curves.png'} <= figures
  assert any(f.startswith('fashion_classifier') for f in os.listdir(
      os.path.join(runs['classifier'], 'fid_stats')))  # real statistics cached


def test_ood_auroc_and_trajectories_for_an_energy_model(runs):
  config = _generative_config(runs, 'ebm', ebm_fashion)
  config.eval.feature_workdir = ''
  config.eval.ood_source = _write_npz(runs['root'] / 'ood.npz', 1)
  config.eval.metrics = 'ood,trajectories'
  exp = experiment.build(config)
  out_dir = runs['root'] / 'ebm_eval'
  results = evaluate.evaluate_state(exp, exp.init_state(), str(out_dir))
  assert set(results) == {'ood_auroc', 'ood_auprc', 'ood_energy_in', 'ood_energy_out'}
  assert 0 <= results['ood_auroc'] <= 1
  assert os.listdir(out_dir) == ['trajectories.png']


def test_psnr_on_missing_pixels(runs):
  config = _generative_config(runs)
  config.data.mask = 'pixels:0.5'
  config.eval.metrics = 'psnr'
  exp = experiment.build(config)
  results = evaluate.evaluate_state(exp, exp.init_state(), str(runs['root'] / 'psnr'))
  assert np.isfinite(results['psnr_missing']) and np.isfinite(results['psnr_missing_zero_fill'])


def test_metric_selection(runs, capsys):
  config = _generative_config(runs)
  exp = experiment.build(config)
  state = exp.init_state()
  config.eval.metrics = 'fid'
  with pytest.raises(EgmError, match='Unknown metric'):
    evaluate.evaluate_state(exp, state, str(runs['root'] / 'bad'))
  config.eval.metrics = 'ood,loss_curves'
  assert evaluate.evaluate_state(exp, state, str(runs['root'] / 'bad')) == {}
  assert "skipping the metric 'ood'" in capsys.readouterr().out
  assert registry.METRICS['cluster_accuracy'].needs.methods == ('cluster',)


def test_too_few_or_too_many_fid_samples(runs):
  config = _generative_config(runs)
  config.eval.metrics = 'feature_fid'
  exp = experiment.build(config)
  state = exp.init_state()
  for n, message in ((5, 'too few'), (10_000, 'holds only 64')):
    config.eval.num_fid_samples = n
    with pytest.raises(EgmError, match=message):
      evaluate.evaluate_state(exp, state, str(runs['root'] / 'few'))


def test_feature_workdir_errors(runs, tmp_path):
  with pytest.raises(EgmError, match='no config.json.*train.py --config configs/classifier_'):
    load_feature_net(str(tmp_path), (28, 28, 1))
  config = classifier_fashion.get_config('smoke')
  os.makedirs(tmp_path / 'untrained')
  with open(tmp_path / 'untrained' / 'config.json', 'w') as f:
    json.dump(config.to_dict(), f)
  with pytest.raises(EgmError, match='has no checkpoint.*train.py'):
    load_feature_net(str(tmp_path / 'untrained'), (28, 28, 1))
  with pytest.raises(EgmError, match='trained on images of shape'):
    load_feature_net(runs['classifier'], (32, 32, 3))


def test_feature_net_saved_before_a_config_key_loads(runs, tmp_path):
  old = tmp_path / 'old_classifier'
  shutil.copytree(runs['classifier'], old)
  with open(old / 'config.json') as f:
    saved = json.load(f)
  del saved['classifier']['random_flip']
  with open(old / 'config.json', 'w') as f:
    json.dump(saved, f)
  net = load_feature_net(str(old), (28, 28, 1))
  np.testing.assert_allclose(
      net.features(np.zeros((2, 28, 28, 1), np.float32)),
      load_feature_net(runs['classifier'], (28, 28, 1)).features(np.zeros((2, 28, 28, 1),
                                                                          np.float32)))


def test_feature_net_rejects_wrong_range_or_channels(runs):
  net = load_feature_net(runs['classifier'], (28, 28, 1))
  assert net.name == 'fashion_classifier'
  assert net.features(np.zeros((4, 28, 28, 1), np.float32)).shape == (4, 128)
  with pytest.raises(EgmError, match=r'in \[-1, 1\]'):
    net.features(np.full((4, 28, 28, 1), 255.0, np.float32))
  with pytest.raises(EgmError, match='takes images of shape'):
    net.features(np.zeros((4, 28, 28, 3), np.float32))


def test_inception_metrics_only_with_weights(runs, monkeypatch):
  monkeypatch.delenv('EGM_INCEPTION_WEIGHTS', raising=False)
  config = _generative_config(runs)
  config.eval.feature_workdir = ''
  config.eval.num_fid_samples = 10
  config.eval.batch_size = 10
  exp = experiment.build(config)
  state = exp.init_state()
  assert not any('inception' in k for k in evaluate.evaluate_state(
      exp, state, str(runs['root'] / 'no_inception')))
  weights = runs['root'] / 'inception_random.npz'
  inception.save_state_dict(str(weights), inception.random_state_dict(0))
  config.eval.inception_weights = str(weights)
  config.eval.metrics = 'inception'
  results = evaluate.evaluate_state(exp, state, str(runs['root'] / 'inception'))
  assert set(results) == {'fid_inception', 'kid_inception', 'kid_inception_std',
                          'inception_score', 'inception_score_std'}
  assert all(np.isfinite(v) for v in results.values())
