"""The classifier's training-time augmentation."""
import jax
import numpy as np

from egm.methods.classifier import random_flip


def test_random_flip_mirrors_about_half_the_images_and_changes_nothing_else():
  x = np.asarray(jax.random.normal(jax.random.key(0), (2000, 4, 5, 3)))
  y = np.asarray(random_flip(x, jax.random.key(1)))
  same = np.all(y == x, axis=(1, 2, 3))
  mirrored = np.all(y == x[:, :, ::-1], axis=(1, 2, 3))
  assert np.all(same ^ mirrored)  # each image is itself or its mirror, never both (odd width)
  assert abs(mirrored.mean() - 0.5) < 4 * 0.5 / np.sqrt(len(x))
