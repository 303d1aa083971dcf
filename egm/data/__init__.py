"""Data: sources loaded into memory, and deterministic batches.

Importing this package registers every source prefix (see sources.py).
"""
from egm.data import idx, image_files, npz_source, sklearn_source, texture, tfds_source
from egm.data.dataset import ArraySource, Dataset
from egm.data.pipeline import eval_batches, train_batches
from egm.data.sources import load_dataset
from egm.data.toy2d import TOY2D_NAMES, sample_toy2d

__all__ = ['ArraySource', 'Dataset', 'TOY2D_NAMES', 'eval_batches',
           'load_dataset', 'sample_toy2d', 'train_batches']
