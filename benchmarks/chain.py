"""The benchmarked chain: K Langevin steps of the 32x32 ConvNet EBM (ConvEnergy(width=64))."""
import jax
import jax.numpy as jnp

from egm import cpu
from egm.nets.energy import ConvEnergy
from egm.sampling import langevin

IMAGE_SHAPE = (32, 32, 3)


def conv_flops(width: int = 64, size: int = 32, channels: int = 3) -> float:
  """FLOPs of one forward pass of ConvEnergy per image (2 per multiply-add)."""
  flops, side, cin, cout = 2.0 * size * size * 9 * channels * width, size, width, width
  while side > 4:
    side, cout = side // 2, cin * 2
    flops += 2.0 * side * side * 16 * cin * cout
    cin = cout
  return flops + 2.0 * side * side * cin


def step_flops(width: int = 64) -> float:
  """FLOPs of one Langevin step per image: forward plus input gradient (about 2x forward)."""
  return 2.0 * conv_flops(width)


def make(batch: int, n_steps: int, width: int = 64, remat=False, compute_dtype: str = 'float32'):
  """(jitted chain(params, x0, key) -> x, params, x0) for ConvEnergy and langevin(s=1, 0.01).

  `compute_dtype` is the network's (`ConvEnergy.compute_dtype`); chain states are float32.
  """
  model = ConvEnergy(width, compute_dtype=compute_dtype)
  x0 = jax.random.uniform(jax.random.key(0), (batch, *IMAGE_SHAPE), jnp.float32, -1.0, 1.0)
  params = model.init(jax.random.key(1), x0[:1])

  def chain(params, x0, key):
    energy = lambda x: model.apply(params, x)
    return langevin(energy, x0, key, n_steps=n_steps, step_size=1.0, noise_scale=0.01,
                    remat=remat)[0]

  return jax.jit(chain), params, x0


def blocking_call(batch: int, n_steps: int, conv_impl: str = 'auto', **make_kwargs):
  """(call, params, x0): `call()` runs the compiled chain of `make` once and waits; warmed up
  (traced and compiled with the convolutions of `egm.cpu.conv_impl(conv_impl)`)."""
  fn, params, x0 = make(batch, n_steps, **make_kwargs)
  key = jax.random.key(0)
  call = lambda: fn(params, x0, key).block_until_ready()
  with cpu.conv_impl(conv_impl):
    call()
  return call, params, x0


def throughput(seconds_per_call: float, n_steps: int, batch: int, gemm_gflops: float) -> dict:
  """s/step, GFLOP/s and fraction of the GEMM rate of a chain of `n_steps` steps per call."""
  per_step = seconds_per_call / n_steps
  gflops = step_flops() * batch / per_step / 1e9
  return {'s_per_step': per_step, 'gflops': gflops, 'gemm_fraction': gflops / gemm_gflops}
