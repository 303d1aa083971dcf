"""A supervised classifier trained with cross-entropy: the feature network of offline FID/KID.

Batches must carry integer labels, `batch['label']` (B,). `logits(state, x)` gives
(B, num_classes) and `features(state, x)` the penultimate embedding (B, feature_dim);
eval reports `test_accuracy`.
"""
import jax
import jax.numpy as jnp
import ml_collections
import optax

from egm.errors import EgmError
from egm.methods import base, optim
from egm.methods.contract import Method, register
from egm.methods.watch import Watch
from egm.nets.classifier import ConvClassifier


def random_flip(x, key):
  """Mirrors each image of (B, S, S, C) left-right with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
  return jnp.where(flip, x[:, :, ::-1], x)


@register('classifier')
class Classifier(Method):
  """Adam on the mean softmax cross-entropy of a ConvClassifier (a feature network)."""
  generative = False
  capabilities = frozenset({'logits', 'features'})
  watch = Watch(knobs={'non_finite': ('classifier.optim.classifier.lr', 'optim.grad_clip')})

  @staticmethod
  def config_section():
    section = ml_collections.ConfigDict()
    section.num_classes = 10
    section.feature_dim = 128  # width of the penultimate layer (the feature space)
    section.random_flip = False  # mirror each training image left-right with prob. 1/2
    section.feature_name = 'classifier'  # metrics in its space: fid_<feature_name>, ...
    section.optim = optim.network_settings(classifier={'lr': 1e-3})
    return section

  def setup(self):
    if not self.data.is_image:
      raise EgmError(
          f'The classifier takes images (S, S, C), but the data has examples of shape '
          f'{self.data.x_shape}. Train it on an image source (--config.data.source=...).')
    hp = self.hp
    self.random_flip = hp.random_flip
    self.net = ConvClassifier(hp.num_classes, self.model_config.width, hp.feature_dim)
    self.opt = self.optimizer('classifier')

  def init(self, key, example_batch):
    if 'label' not in example_batch:
      raise EgmError(
          'The classifier needs labelled data, but the batches carry no `label`. Use a source '
          'with labels (idx: with *-labels-* files, folder: with class sub-folders, npz: with a '
          '`label` array, tfds:).')
    x = example_batch['x'][:2]
    return {'classifier': base.init_network(self.net, self.opt, key, x),
            'step': jnp.zeros((), jnp.int32)}

  def loss(self, params, batch):
    logits = self.net.apply({'params': params}, batch['x'])
    labels = batch['label']
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    return loss, {'loss': loss, 'accuracy': accuracy}

  def update(self, state, batch, key):
    if self.random_flip:
      batch = {**batch, 'x': random_flip(batch['x'], key)}
    net = state['classifier']
    grads, metrics = jax.grad(self.loss, has_aux=True)(net['params'], batch)
    return {'classifier': base.apply_gradients(net, grads, self.opt),
            'step': state['step'] + 1}, metrics

  def logits(self, state, x):
    """(B, S, S, C) in [-1, 1] -> (B, num_classes)."""
    return self.net.apply({'params': state['classifier']['params']}, x)

  def features(self, state, x):
    """(B, S, S, C) in [-1, 1] -> (B, feature_dim), the penultimate layer."""
    return self.net.apply({'params': state['classifier']['params']}, x,
                          method=ConvClassifier.features)
