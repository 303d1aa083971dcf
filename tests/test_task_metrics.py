"""Task metrics against closed forms and known cases; the loss-curve plot."""
import json

import numpy as np
import pytest

from egm.errors import EgmError
from egm.evaluation import task_metrics
from egm.figures import plots


def test_auroc_auprc_of_separated_scores_is_one():
  rng = np.random.default_rng(0)
  scores_in, scores_out = rng.uniform(0, 1, 500), rng.uniform(2, 3, 300)
  assert task_metrics.auroc(scores_in, scores_out) == 1.0
  assert task_metrics.auprc(scores_in, scores_out) == 1.0
  assert task_metrics.auroc(scores_out, scores_in) == 0.0


def test_auroc_of_one_distribution_is_one_half():
  rng = np.random.default_rng(1)
  auroc = task_metrics.auroc(rng.normal(size=20_000), rng.normal(size=20_000))
  assert abs(auroc - 0.5) < 0.01  # std of the estimate ≈ 0.003
  assert task_metrics.auroc(np.zeros(10), np.zeros(10)) == 0.5  # ties count one half


def test_auroc_of_shifted_gaussians_matches_the_closed_form():
  # P(Y > X) for X ~ N(0, 1), Y ~ N(d, 1) is Φ(d / √2); d = 1: 0.7602.
  rng = np.random.default_rng(2)
  auroc = task_metrics.auroc(rng.normal(size=20_000), rng.normal(1.0, size=20_000))
  assert abs(auroc - 0.7602) < 0.01


def test_auprc_of_uninformative_scores_is_the_positive_fraction():
  rng = np.random.default_rng(3)
  auprc = task_metrics.auprc(rng.normal(size=30_000), rng.normal(size=10_000))
  assert abs(auprc - 0.25) < 0.02


def test_ood_scores_need_both_sets_and_finite_values():
  with pytest.raises(EgmError, match='in- and out-of-distribution'):
    task_metrics.auroc(np.zeros(3), np.zeros(0))
  with pytest.raises(EgmError, match='NaN'):
    task_metrics.auroc(np.array([0.0, np.nan]), np.ones(2))


def test_cluster_accuracy_of_a_permuted_labelling_is_one():
  labels = np.random.default_rng(4).integers(0, 10, 1000)
  permutation = np.random.default_rng(5).permutation(10)
  assert task_metrics.cluster_accuracy(labels, permutation[labels]) == 1.0


def test_cluster_accuracy_known_cases():
  labels = np.array([0, 0, 1, 1, 2, 2])
  assert task_metrics.cluster_accuracy(labels, np.array([1, 1, 0, 0, 0, 2])) == 5 / 6
  assert task_metrics.cluster_accuracy(labels, np.zeros(6, int)) == 2 / 6
  # more clusters than classes: the unmatched cluster counts as wrong
  assert task_metrics.cluster_accuracy(labels, np.array([0, 0, 1, 1, 2, 3])) == 5 / 6
  with pytest.raises(EgmError, match='one cluster id per label'):
    task_metrics.cluster_accuracy(labels, np.zeros(5, int))


def test_psnr_of_a_known_mse():
  x = np.zeros((2, 4, 4, 1))
  y = x + 0.1  # MSE 0.01, range 2: 10·log10(4 / 0.01) = 26.02 dB
  assert task_metrics.psnr(x, y) == pytest.approx(10 * np.log10(400.0))
  mask = np.zeros((2, 4, 4, 1))
  mask[:, :2] = 1
  y_masked = y.copy()
  y_masked[:, 2:] = 1.0  # wrong only where the mask is 0
  assert task_metrics.psnr(x, y_masked, mask) == pytest.approx(10 * np.log10(400.0))
  assert task_metrics.psnr(x, x) == float('inf')
  with pytest.raises(EgmError, match='selects none'):
    task_metrics.psnr(x, y, np.zeros_like(mask))


def test_accuracy():
  logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
  assert task_metrics.accuracy(np.array([0, 1, 1]), logits) == pytest.approx(2 / 3)


def test_loss_curves_png(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  with open(path, 'w') as f:
    for step in range(10, 110, 10):
      f.write(json.dumps({'step': step, 'loss': 1.0 / step, 'acc': step / 100,
                          'steps_per_sec': 3.0}) + '\n')
  series = plots.read_metrics_jsonl(str(path))
  assert sorted(series) == ['acc', 'loss']
  np.testing.assert_allclose(series['acc'][1], np.arange(10, 110, 10) / 100)
  plots.save_loss_curves(str(tmp_path / 'curves.png'), series)
  assert (tmp_path / 'curves.png').stat().st_size > 0
  with pytest.raises(EgmError, match='does not exist'):
    plots.read_metrics_jsonl(str(tmp_path / 'missing.jsonl'))
