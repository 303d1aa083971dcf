"""One config's jitted update with its plain `nn.Conv` layers (the encoder, the generator's
output conv) on lax, or routed through egm's im2col+GEMM convolution, timed in turn.

    python -m benchmarks.update_conv_options triangle [rounds] [batch]

Prints the median wall s/step of each variant and its speed-up over lax (`benchmarks/OPTIONS.md`).
"""
import json
import sys

from benchmarks import timing, torch_updates, training
from egm.cpu import fast_convolutions

VARIANTS = {'lax': None, 'fast_auto': 'auto', 'fast_matmul': 'matmul'}


def measure(case: str, rounds: int, batch_size: int = 0) -> dict:
  """{variant: median s/step}; each variant's update traced (and compiled) under its option."""
  config = torch_updates.load(case, batch_size)
  mesh = training.trainer.parallel.make_mesh()
  steps = {}
  for name, impl in VARIANTS.items():
    step, _ = torch_updates.egm_step(config, mesh)
    if impl is None:
      step()
    else:
      with fast_convolutions(impl):
        step()  # traced here: the option holds for every later call
    steps[name] = step
  seconds = timing.interleaved(steps, rounds)
  return {'case': case, 'batch': config.train.batch_size, 'rounds': rounds,
          **{f'{k}_s': v for k, v in seconds.items()},
          **{f'{k}_speedup': seconds['lax'] / v for k, v in seconds.items()}}


if __name__ == '__main__':
  args = sys.argv[1:]
  print(json.dumps(measure(args[0], int(args[1]) if len(args) > 1 else 4,
                           int(args[2]) if len(args) > 2 else 0)))
