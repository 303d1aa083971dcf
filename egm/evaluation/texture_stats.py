"""Is it the same texture? Histograms of a fixed filter bank's responses, compared by TV.

A texture is, to first order, the distribution of local filter responses
(Heeger & Bergen 1995; Portilla & Simoncelli 2000). The bank: the grey level
itself, Laplacians of Gaussians at σ = 1, 2, 4 px, and Gabor filters at 3
frequencies × 4 orientations (real parts). For each filter, the responses of
two images are binned on the same 32 bins (spanning the reference image's 1st
to 99th percentile, plus two outer bins) and compared by total variation;
`texture_distance` is the mean over the 16 filters, in [0, 1]: 0 for identical
response statistics, 1 for disjoint ones.
"""
import functools

import numpy as np
import scipy.ndimage
import scipy.signal

NUM_BINS = 32
GABOR_FREQUENCIES = (0.08, 0.16, 0.32)  # cycles per pixel
GABOR_ORIENTATIONS = 4
LOG_SIGMAS = (1.0, 2.0, 4.0)


@functools.lru_cache(maxsize=1)
def gabor_bank() -> tuple[np.ndarray, ...]:
  """Real parts of the Gabor kernels, each zero-mean, float64 2-D."""
  from skimage.filters import gabor_kernel  # pylint: disable=g-import-not-at-top
  kernels = []
  for frequency in GABOR_FREQUENCIES:
    for k in range(GABOR_ORIENTATIONS):
      kernel = np.real(gabor_kernel(frequency, theta=np.pi * k / GABOR_ORIENTATIONS))
      kernels.append(kernel - kernel.mean())
  return tuple(kernels)


def filter_responses(image: np.ndarray) -> list[np.ndarray]:
  """Responses of the bank to a grey image (H, W) (or (H, W, C), averaged to grey), valid region.

  Returns 16 float64 1-D arrays; the borders a filter would pad are cut off.
  """
  grey = np.asarray(image, np.float64)
  if grey.ndim == 3:
    grey = grey.mean(axis=-1)
  responses = [grey.ravel()]
  for sigma in LOG_SIGMAS:
    margin = int(np.ceil(4 * sigma))
    response = scipy.ndimage.gaussian_laplace(grey, sigma)
    responses.append(_inner(response, margin).ravel())
  for kernel in gabor_bank():
    if min(grey.shape) >= kernel.shape[0]:
      responses.append(scipy.signal.fftconvolve(grey, kernel, mode='valid').ravel())
    else:
      responses.append(scipy.signal.fftconvolve(grey, kernel, mode='same').ravel())
  return responses


def _inner(response: np.ndarray, margin: int) -> np.ndarray:
  """The response without a `margin`-pixel border (all of it if the image is too small)."""
  if min(response.shape) <= 2 * margin:
    return response
  return response[margin:-margin, margin:-margin]


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
  counts = np.histogram(np.clip(values, edges[0], edges[-1]), edges)[0]
  return counts / max(counts.sum(), 1)


def texture_distance(image: np.ndarray, reference: np.ndarray) -> float:
  """Mean over the filter bank of the TV between response histograms, in [0, 1].

  Both images in the same units (e.g. [-1, 1]); grey (H, W) or (H, W, C).
  """
  total = 0.0
  pairs = list(zip(filter_responses(image), filter_responses(reference)))
  for values, ref_values in pairs:
    low, high = np.percentile(ref_values, [1, 99])
    inner = np.linspace(low, high, NUM_BINS + 1) if high > low else np.array([low, low + 1e-6])
    spread = max(high - low, 1e-6)
    edges = np.concatenate([[min(values.min(), ref_values.min(), low - spread) - 1e-9], inner,
                            [max(values.max(), ref_values.max(), high + spread) + 1e-9]])
    total += 0.5 * np.abs(_histogram(values, edges) - _histogram(ref_values, edges)).sum()
  return total / len(pairs)
