"""A trained project classifier (method=classifier) loaded from its workdir as a feature network.

Its penultimate layer is the feature space of the offline FID/KID/precision/recall, which are
named after `config.classifier.feature_name` of the classifier run (e.g. fid_fashion_classifier).
"""
import dataclasses
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from egm.errors import EgmError
from egm.evaluation import feature_metrics
from egm.methods import DataSpec
from egm.run import experiment
from egm.run import workdir as workdir_lib

_TRAIN_HINT = ('Train one with `python train.py --config configs/classifier_fashion.py --workdir '
               'runs/classifier_fashion` (or classifier_mnist.py / classifier_cifar.py, matching '
               'the data) and pass --config.eval.feature_workdir=runs/classifier_fashion.')


@dataclasses.dataclass(frozen=True)
class FeatureNet:
  """Attributes: name (metric suffix), workdir, step, image_shape (S, S, C), and the jitted
  functions features: images (B, S, S, C) in [-1, 1] -> (B, F) and logits -> (B, classes)."""
  name: str
  workdir: str
  step: int
  image_shape: tuple[int, ...]
  features_fn: Callable
  logits_fn: Callable

  def check(self, images, caller: str) -> None:
    """Raises EgmError unless images (N, S, S, C) are in [-1, 1] with this net's shape."""
    feature_metrics.check_images(images, caller)
    if tuple(np.shape(images)[1:]) != self.image_shape:
      raise EgmError(
          f'{caller}: the feature network {self.name} ({self.workdir}) takes images of shape '
          f'{self.image_shape} (H, W, C), but got {tuple(np.shape(images)[1:])}. Use a '
          'classifier trained on the same image size and channel count as the data.')

  def features(self, images) -> np.ndarray:
    """(B, S, S, C) in [-1, 1] -> (B, F) float32."""
    self.check(images, f'features of {self.name}')
    return np.asarray(self.features_fn(jnp.asarray(images)))


def load_feature_net(workdir: str, image_shape) -> FeatureNet:
  """Restores the newest checkpoint of the classifier run in `workdir` for images `image_shape`."""
  if not os.path.exists(os.path.join(workdir, workdir_lib.CONFIG_FILE)):
    raise EgmError(f'config.eval.feature_workdir={workdir!r} holds no classifier run (no '
                   f'config.json). {_TRAIN_HINT}')
  config = workdir_lib.saved_config(workdir)
  if config.method != 'classifier':
    raise EgmError(f'config.eval.feature_workdir={workdir!r} is a {config.method!r} run, not a '
                   f'classifier. {_TRAIN_HINT}')
  trained = (config.data.image_size, config.data.image_size, config.data.channels)
  if trained != tuple(image_shape):
    raise EgmError(
        f'The classifier in {workdir} was trained on images of shape {trained}, but this data '
        f'has {tuple(image_shape)}. Use a classifier trained on the same data. {_TRAIN_HINT}')
  try:
    run = workdir_lib.restore(config, workdir,
                              spec=experiment.read_data_spec(workdir) or DataSpec.of(image_shape))
  except EgmError as e:
    raise EgmError(f'The classifier run {workdir} has no checkpoint that opens: {e} '
                   f'{_TRAIN_HINT}') from e
  method, state = run.method, run.state
  return FeatureNet(name=config.classifier.feature_name, workdir=workdir, step=run.step,
                    image_shape=tuple(image_shape),
                    features_fn=jax.jit(lambda x: method.features(state, x)),
                    logits_fn=jax.jit(lambda x: method.logits(state, x)))
