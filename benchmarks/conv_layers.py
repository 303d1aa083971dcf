"""One convolution layer's forward + both gradients: egm's implementations vs PyTorch.

  python -m benchmarks.conv_layers [--batch 100] [--rounds 8]

Per 3x3 'SAME' layer shape (the layers of the Fashion-MNIST generators and energies), one
jitted call of grad(sum(sin(conv(x, W)))) w.r.t. x and W with plain
`lax.conv_general_dilated`, egm's `lax_conv.conv`, `matmul` (im2col + GEMM) and
`onednn_conv.conv` (oneDNN through XLA FFI, where it builds), and the same in PyTorch (NCHW
and channels-last), called in turn; plus the GEMM rate of both on the
layer's forward GEMM shape (M = B·H·W, K = 9·C, N = F). It reports the layer's GFLOP/s
(3 convolutions' worth: forward, input and kernel gradient) and the ratio best PyTorch /
best egm, DESIGN.md §7. It measures what bounds the
whole updates of `benchmarks.torch_updates` on a CPU: per layer, PyTorch's direct (oneDNN)
convolution against XLA:CPU's convolution and egm's patches + GEMM.
"""
import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks import timing
from egm.cpu import lax_conv, onednn_build, onednn_conv
from egm.cpu import convolution as conv

# (side, in channels, out channels)
SHAPES = ((28, 16, 16), (28, 16, 64), (14, 32, 128), (7, 64, 256), (28, 32, 32), (28, 64, 64))
PADS = ((1, 1), (1, 1))
EGM_CALLS = ('egm_lax', 'egm_lax_conv', 'egm_matmul', 'egm_onednn')


def egm_layer(impl: str, x, kernel):
  """A blocking call of the jitted (dx, dW) of sum(sin(conv)) with egm's `impl` -> (dx, dW)."""
  def conv_fn(x, kernel):
    if impl == 'matmul':
      return conv.matmul_conv(x, kernel, (1, 1), PADS)
    if impl == 'lax_conv':
      return lax_conv.conv(x, kernel, (1, 1), PADS)
    if impl == 'onednn':
      return onednn_conv.conv(x, kernel, (1, 1), PADS)
    return lax.conv_general_dilated(x, kernel, (1, 1), PADS,
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  grad = jax.jit(jax.grad(lambda x, k: jnp.sum(jnp.sin(conv_fn(x, k))), argnums=(0, 1)))
  return lambda: jax.block_until_ready(grad(x, kernel))


def torch_layer(x_nhwc, kernel_hwio, channels_last: bool):
  """The same in PyTorch: a blocking call of forward + backward -> (dx NCHW, dW OIHW)."""
  import torch  # pylint: disable=import-outside-toplevel
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  x = torch.from_numpy(np.array(x_nhwc.transpose(0, 3, 1, 2))).contiguous(memory_format=fmt)
  x.requires_grad_(True)
  w = torch.from_numpy(np.array(kernel_hwio.transpose(3, 2, 0, 1))).contiguous(memory_format=fmt)
  w.requires_grad_(True)

  def call():
    x.grad = w.grad = None
    torch.sin(torch.nn.functional.conv2d(x, w, padding=1)).sum().backward()
    return x.grad, w.grad

  return call


def gemm_calls(m: int, k: int, n: int) -> dict:
  """Blocking calls of one (m, k) @ (k, n) float32 GEMM in jax and in PyTorch."""
  import torch  # pylint: disable=import-outside-toplevel
  a = jax.random.normal(jax.random.key(0), (m, k))
  b = jax.random.normal(jax.random.key(1), (k, n))
  dot = jax.jit(jnp.dot)
  at, bt = torch.randn(m, k), torch.randn(k, n)
  return {'gemm_jax': lambda: dot(a, b).block_until_ready(), 'gemm_torch': lambda: at @ bt}


def measure(side: int, cin: int, cout: int, batch: int, rounds: int) -> dict:
  """Median seconds of each call in turn and the GFLOP/s they imply."""
  x = np.asarray(jax.random.normal(jax.random.key(0), (batch, side, side, cin)))
  kernel = np.asarray(0.1 * jax.random.normal(jax.random.key(1), (3, 3, cin, cout)))
  calls = {'egm_lax': egm_layer('lax', x, kernel),
           'egm_lax_conv': egm_layer('lax_conv', x, kernel),
           'egm_matmul': egm_layer('matmul', x, kernel),
           **({'egm_onednn': egm_layer('onednn', x, kernel)} if onednn_build.available() else {}),
           'torch_nchw': torch_layer(x, kernel, False),
           'torch_channels_last': torch_layer(x, kernel, True),
           **gemm_calls(batch * side * side, 9 * cin, cout)}
  for call in calls.values():
    call()  # compile / warm up
  seconds = timing.interleaved(calls, rounds)
  forward_flops = 2.0 * batch * side * side * 9 * cin * cout
  rate = {name: (forward_flops if name.startswith('gemm') else 3 * forward_flops) / s / 1e9
          for name, s in seconds.items()}
  best_egm = min(seconds[k] for k in EGM_CALLS if k in seconds)
  best_torch = min(seconds['torch_nchw'], seconds['torch_channels_last'])
  return {'layer': f'{side}x{side} {cin}->{cout}', 'batch': batch,
          **{f'{k}_ms': 1e3 * v for k, v in seconds.items()},
          **{f'{k}_gflops': v for k, v in rate.items()},
          'ratio': best_torch / best_egm}


HEADER = ['layer (3x3, B=batch)', 'lax ms', 'egm lax_conv ms', 'egm matmul ms', 'egm oneDNN ms',
          'PyTorch NCHW ms', 'PyTorch channels-last ms', 'best egm GFLOP/s', 'best PyTorch GFLOP/s',
          'GEMM GFLOP/s jax / PyTorch', 'ratio PyTorch/egm']


def rows(batch: int, rounds: int, shapes=SHAPES) -> list:
  """Markdown rows of HEADER, one per layer shape."""
  out = []
  for shape in shapes:
    r = measure(*shape, batch, rounds)
    out.append([f'{r["layer"]}, B={batch}'] +
               [f'{r[f"{k}_ms"]:.1f}' if f'{k}_ms' in r else '-'
                for k in ('egm_lax', 'egm_lax_conv', 'egm_matmul', 'egm_onednn', 'torch_nchw',
                          'torch_channels_last')] +
               [f'{max(r[f"{k}_gflops"] for k in EGM_CALLS if f"{k}_gflops" in r):.0f}',
                f'{max(r["torch_nchw_gflops"], r["torch_channels_last_gflops"]):.0f}',
                f'{r["gemm_jax_gflops"]:.0f} / {r["gemm_torch_gflops"]:.0f}',
                f'{r["ratio"]:.2f}'])
    print(json.dumps(r), flush=True)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=100)
  parser.add_argument('--rounds', type=int, default=8)
  args = parser.parse_args()
  print('| ' + ' | '.join(HEADER) + ' |\n|' + '---|' * len(HEADER))
  for row in rows(args.batch, args.rounds):
    print('| ' + ' | '.join(row) + ' |', flush=True)


if __name__ == '__main__':
  main()
