"""`Conv`: the NHWC convolution layer of egm's networks, with the parameters of `nn.Conv`.

It computes `egm.cpu.conv2d`, so a CPU run takes egm's fast convolutions and every other
backend lax's; parameters are named and shaped as `nn.Conv`'s ('kernel' (kh, kw, cin, cout),
'bias' (cout,)), so checkpoints do not depend on the implementation.
"""
from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from egm.cpu import convolution


class Conv(nn.Module):
  """(B,H,W,Cin) -> (B,Ho,Wo,features); `padding` 'SAME' | 'VALID' | ((lo, hi), (lo, hi))."""
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] = (1, 1)
  padding: str | Sequence[Sequence[int]] = 'SAME'
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
    y = convolution.conv2d(x, kernel, tuple(self.strides), self.padding)
    if self.use_bias:
      bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
      y = y + bias.astype(y.dtype)
    return y
