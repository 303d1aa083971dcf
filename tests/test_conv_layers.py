"""benchmarks/conv_layers.py compares like with like: egm's implementations and PyTorch's
layer compute the same input and kernel gradients (skipped without torch)."""
import jax
import numpy as np
import pytest

from benchmarks import conv_layers

torch = pytest.importorskip('torch')

pytestmark = pytest.mark.integration  # benchmark support, not library behaviour


@pytest.mark.parametrize('channels_last', [False, True])
def test_the_timed_layers_compute_the_same_gradients(channels_last):
  x = np.asarray(jax.random.normal(jax.random.key(0), (2, 7, 7, 4)))
  kernel = np.asarray(0.3 * jax.random.normal(jax.random.key(1), (3, 3, 4, 5)))
  dx_t, dw_t = conv_layers.torch_layer(x, kernel, channels_last)()
  for impl in ('lax', 'lax_conv', 'matmul', 'onednn'):
    dx, dw = conv_layers.egm_layer(impl, x, kernel)()
    np.testing.assert_allclose(dx, dx_t.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dw, dw_t.numpy().transpose(2, 3, 1, 0), rtol=1e-4, atol=1e-5)


def test_a_row_reports_times_rates_and_the_ratio():
  row = conv_layers.measure(7, 4, 8, batch=2, rounds=1)
  times = [row[f'{k}_ms'] for k in ('egm_lax', 'egm_lax_conv', 'egm_matmul', 'egm_onednn',
                                    'torch_nchw', 'torch_channels_last')]
  assert all(t > 0 for t in times) and row['ratio'] > 0
  flops = 3 * 2 * 2 * 49 * 9 * 4 * 8  # forward, input and kernel gradient
  assert row['egm_lax_gflops'] == pytest.approx(flops / row['egm_lax_ms'] / 1e6, rel=1e-9)
