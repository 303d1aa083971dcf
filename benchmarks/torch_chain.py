"""The same Langevin chain in PyTorch (optional `bench` extra), for a side-by-side speed ratio."""
import numpy as np


def available() -> bool:
  """Whether torch imports."""
  try:
    import torch  # noqa: F401 pylint: disable=import-outside-toplevel
  except ImportError:
    return False
  return True


def make(batch: int, n_steps: int, width: int = 64, channels_last: bool = False,
         device: str = 'cpu'):
  """A blocking call running n_steps of x <- x - dE/dx + 0.01 eps on the ConvEnergy network,
  on `device` ('cpu' or 'cuda').

  The network (conv3x3 w, conv4x4/2 2w, 4w, 8w, conv4x4 VALID 1, LeakyReLU 0.2) is built
  with torch.nn, parameters frozen so that only the input gradient is computed, as in egm.
  """
  import torch  # pylint: disable=import-outside-toplevel
  from torch import nn  # pylint: disable=import-outside-toplevel

  torch.manual_seed(0)
  layers, cin = [nn.Conv2d(3, width, 3, 1, 1), nn.LeakyReLU(0.2)], width
  for _ in range(3):
    layers += [nn.Conv2d(cin, 2 * cin, 4, 2, 1), nn.LeakyReLU(0.2)]
    cin *= 2
  net = nn.Sequential(*layers, nn.Conv2d(cin, 1, 4, 1, 0))
  for p in net.parameters():
    p.requires_grad_(False)
  memory_format = torch.channels_last if channels_last else torch.contiguous_format
  net = net.to(device=device, memory_format=memory_format)
  x0 = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (batch, 3, 32, 32))
                        .astype(np.float32)).to(device).contiguous(memory_format=memory_format)

  def run():
    x = x0
    for _ in range(n_steps):
      x = x.detach().requires_grad_(True)
      (grad,) = torch.autograd.grad(net(x).sum(), x)
      x = x - grad + 0.01 * torch.randn_like(x)
    if device != 'cpu':
      torch.cuda.synchronize()
    return x

  return run


def threads() -> int:
  """torch's intra-op thread count."""
  import torch  # pylint: disable=import-outside-toplevel
  return torch.get_num_threads()
