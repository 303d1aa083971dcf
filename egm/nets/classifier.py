"""A small ConvNet classifier whose penultimate layer is the project's offline feature space."""
import flax.linen as nn


class ConvClassifier(nn.Module):
  """Images (B, S, S, C) in [-1, 1] -> logits (B, num_classes); `features` -> (B, feature_dim).

  conv3x3 w → conv3x3/2 2w → conv3x3/2 4w (ReLU), flatten, dense feature_dim (ReLU: the
  features), dense num_classes.
  """
  num_classes: int = 10
  width: int = 32
  feature_dim: int = 128

  def setup(self):
    w = self.width
    self.convs = [nn.Conv(c, (3, 3), strides=s) for c, s in ((w, 1), (2 * w, 2), (4 * w, 2))]
    self.embed = nn.Dense(self.feature_dim)
    self.head = nn.Dense(self.num_classes)

  def features(self, x):
    """Penultimate-layer embedding: (B, S, S, C) -> (B, feature_dim), non-negative."""
    for conv in self.convs:
      x = nn.relu(conv(x))
    return nn.relu(self.embed(x.reshape(x.shape[0], -1)))

  def __call__(self, x):
    return self.head(self.features(x))
