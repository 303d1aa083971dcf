"""Task metrics on host arrays: OOD AUROC/AUPRC, clustering accuracy, PSNR, accuracy."""
import numpy as np
import scipy.optimize
from sklearn import metrics as sk_metrics

from egm.errors import EgmError


def _ood_labels_and_scores(scores_in, scores_out):
  scores_in, scores_out = np.ravel(scores_in), np.ravel(scores_out)
  if not len(scores_in) or not len(scores_out):
    raise EgmError(
        f'OOD detection needs in- and out-of-distribution scores, got {len(scores_in)} and '
        f'{len(scores_out)}. Give both test sets some examples (eval.max_test_examples).')
  scores = np.concatenate([scores_in, scores_out]).astype(np.float64)
  if not np.all(np.isfinite(scores)):
    raise EgmError('OOD scores (energies) contain NaN or inf; the model has diverged.')
  labels = np.concatenate([np.zeros(len(scores_in)), np.ones(len(scores_out))])
  return labels, scores


def auroc(scores_in, scores_out) -> float:
  """Area under the ROC curve for telling OOD (positive) from in-distribution by a higher score.

  Args:
    scores_in: (N,) scores (e.g. energies) of in-distribution examples.
    scores_out: (M,) scores of out-of-distribution examples.
  Returns:
    P(score_out > score_in) + ½ P(tie): 1 when separated, ½ for identical distributions.
  """
  return float(sk_metrics.roc_auc_score(*_ood_labels_and_scores(scores_in, scores_out)))


def auprc(scores_in, scores_out) -> float:
  """Average precision (area under the precision-recall curve) with OOD as the positive class."""
  return float(sk_metrics.average_precision_score(*_ood_labels_and_scores(scores_in, scores_out)))


def cluster_accuracy(labels, clusters) -> float:
  """Accuracy of cluster ids (N,) against class labels (N,) under the best one-to-one matching.

  The matching of clusters to classes maximises the number of agreements (Hungarian
  algorithm); clusters left unmatched (more clusters than classes) count as errors.
  """
  labels, clusters = np.ravel(labels).astype(np.int64), np.ravel(clusters).astype(np.int64)
  if labels.shape != clusters.shape or not len(labels):
    raise EgmError(
        f'cluster_accuracy needs one cluster id per label, got {clusters.shape} clusters for '
        f'{labels.shape} labels.')
  if labels.min() < 0 or clusters.min() < 0:
    raise EgmError('Labels and cluster ids must be non-negative integers.')
  counts = np.zeros((clusters.max() + 1, labels.max() + 1), np.int64)
  np.add.at(counts, (clusters, labels), 1)
  rows, cols = scipy.optimize.linear_sum_assignment(counts, maximize=True)
  return float(counts[rows, cols].sum() / len(labels))


def psnr(x, y, mask=None, data_range: float = 2.0) -> float:
  """Peak signal-to-noise ratio 10·log10(range²/MSE) in dB over the pixels where mask is 1.

  Args:
    x, y: images (B, H, W, C) in [-1, 1] (data_range 2).
    mask: (B, H, W, 1 or C) weights, 1 = pixel counted; None counts every pixel.
  """
  sq = np.square(np.asarray(x, np.float64) - np.asarray(y, np.float64))
  weights = np.ones_like(sq) if mask is None else np.broadcast_to(mask, sq.shape)
  total = float(np.sum(weights))
  if total <= 0:
    raise EgmError('PSNR over an empty set of pixels: the mask selects none. Check data.mask.')
  mse = float(np.sum(sq * weights) / total)
  return float('inf') if mse == 0 else 10.0 * np.log10(data_range ** 2 / mse)


def accuracy(labels, logits) -> float:
  """Fraction of rows whose arg-max logit (N, K) equals the label (N,)."""
  return float(np.mean(np.argmax(logits, axis=-1) == np.ravel(labels)))
