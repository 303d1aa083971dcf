"""Task metrics: classifier accuracy, OOD detection from energies, clustering, restoration PSNR.

- `test_accuracy` (methods with `logits`): fraction of test images classified correctly;
- `ood`: `ood_auroc` / `ood_auprc` of the energy as an out-of-distribution score, the test
  split (in-distribution) against the images of `eval.ood_source` (OOD = positive class);
- `cluster_accuracy` (methods with `cluster(state, x, key) -> (B,)` ids): accuracy under the best
  one-to-one matching of clusters to test labels (Hungarian);
- `psnr` (with `data.mask`): test images with the mask's pixels missing (set to 0) are
  reconstructed; `psnr_missing` is the PSNR (dB, range 2) of the reconstruction on the missing
  pixels, beside `psnr_missing_zero_fill`, that of the corrupted input itself.
"""
import jax
import numpy as np

from egm import data
from egm.data.masks import example_masks, parse_mask
from egm.errors import EgmError
from egm.evaluation import task_metrics
from egm.evaluation.registry import register_metric

_RESTORATION_SEED = 4321  # masks of the restoration test: not the training masks


def _test_outputs(ctx, fn, source=None, keyed=False) -> tuple[np.ndarray, np.ndarray | None]:
  """`fn(state, x)` (`fn(state, x, key)` if keyed) concatenated over a seeded sample of
  eval.max_test_examples; labels."""
  jitted = jax.jit(fn)
  outputs, labels = [], []
  for i, batch in enumerate(data.eval_batches(
      source or ctx.dataset.test, batch_size=ctx.config.eval.batch_size,
      max_examples=ctx.config.eval.max_test_examples)):
    key = (jax.random.fold_in(ctx.key, 1000 + i),) if keyed else ()
    outputs.append(np.asarray(jitted(ctx.state, batch['x'], *key)))
    labels.append(batch.get('label'))
  labels = None if labels[0] is None else np.concatenate(labels)
  return np.concatenate(outputs), labels


@register_metric('test_accuracy', methods=('logits',), labels=True)
def test_accuracy(ctx) -> dict:
  logits, labels = _test_outputs(ctx, ctx.method.logits)
  return {'test_accuracy': task_metrics.accuracy(labels, logits)}


def load_ood_source(ctx):
  """The split of `eval.ood_source` used as OOD data (its test split, else its train split)."""
  data_config = ctx.config.data.copy_and_resolve_references()
  with data_config.unlocked():
    data_config.source = ctx.config.eval.ood_source
    data_config.max_examples = 0
    data_config.holdout = 0
    data_config.train_split, data_config.test_split = 'train', 'test'
  ood = data.load_dataset(data_config)
  if ood.kind != ctx.dataset.kind:
    raise EgmError(f'eval.ood_source {ctx.config.eval.ood_source!r} holds {ood.kind} data but the '
                   f'model was trained on {ctx.dataset.kind} data. Give an OOD source of the same '
                   'kind (e.g. idx:../shared/data, MNIST, for a Fashion-MNIST model).')
  return ood.test if ood.test is not None else ood.train


@register_metric('ood', methods=('energy',), test=True, config=('eval.ood_source',))
def ood_detection(ctx) -> dict:
  energy_in, _ = _test_outputs(ctx, ctx.method.energy)
  energy_out, _ = _test_outputs(ctx, ctx.method.energy, load_ood_source(ctx))
  return {'ood_auroc': task_metrics.auroc(energy_in, energy_out),
          'ood_auprc': task_metrics.auprc(energy_in, energy_out),
          'ood_energy_in': float(np.mean(energy_in)), 'ood_energy_out': float(np.mean(energy_out))}


@register_metric('cluster_accuracy', methods=('cluster',), labels=True)
def cluster_accuracy(ctx) -> dict:
  clusters, labels = _test_outputs(ctx, ctx.method.cluster, keyed=True)
  return {'cluster_accuracy': task_metrics.cluster_accuracy(labels, clusters)}


@register_metric('psnr', methods=('reconstruct',), kind='image', test=True, config=('data.mask',))
def restoration_psnr(ctx) -> dict:
  source = ctx.dataset.test
  mask_fn = parse_mask(ctx.config.data.mask, *source.x.shape[1:3])
  reconstruct = jax.jit(ctx.method.reconstruct)
  restored, corrupted, truth, masks = [], [], [], []
  for batch in data.eval_batches(source, batch_size=ctx.config.eval.batch_size,
                                 max_examples=ctx.config.eval.max_test_examples):
    x = batch['x']
    mask = example_masks(mask_fn, _RESTORATION_SEED, batch['index'])
    x_obs = x * mask
    restored.append(np.asarray(reconstruct(ctx.state, {'x': x_obs, 'mask': mask},
                                           jax.random.fold_in(ctx.key, 2000 + len(restored)))))
    corrupted.append(x_obs)
    truth.append(x)
    masks.append(mask)
  truth, masks = np.concatenate(truth), np.concatenate(masks)
  missing = 1.0 - masks
  return {'psnr_missing': task_metrics.psnr(np.concatenate(restored), truth, missing),
          'psnr_missing_zero_fill': task_metrics.psnr(np.concatenate(corrupted), truth, missing)}
