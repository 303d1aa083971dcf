"""srinf's learned step size against a grid of fixed steps, every run trained the same way.

    python -m studies.srinf_step_grid --out runs/srinf_grid \
      --data_source idx:data/fashion_mnist/usr/share/datasets/fashion-mnist \
      --grid 0.0125,0.025,0.05,0.1,0.2 --learned_inits 0.05,0.2 --updates 100 \
      --set srinf.n_steps=10,train.batch_size=32,data.image_size=14,srinf.latent_dims=32/64

Each run trains `configs/srinf_fashion.py` (with the `--set` overrides) for `--updates` updates
from the same initial parameters and the same batches: one run per grid step with the step
fixed (`srinf.learn_step_size=False`), and one per `--learned_inits` value that learns it from
there on every update (`srinf.step_size_every=1`). Each trained model is then scored on the same test images
with its own step (fixed or learned), by short-run inference from the prior:

- `test_rec_mse`: mean squared error per pixel of g(z_K) against x;
- `test_bound`: the auxiliary bound B per example (nats, an upper bound on
  −log p(x) + KL(q_K ‖ p(z|x)); egm/methods/srinf.py) with the reverse kernel as trained;
- `test_bound_refit`: the same bound after `--reverse_fit_updates` Adam updates of the reverse
  kernel alone (θ and δ held) on training images. A fixed-step run never trains its reverse
  kernel, so its `test_bound` is the loose same-form bound; refitted, every run's bound is the
  tightest its kernel family gives for its own generator and step: a comparable upper bound on
  its test −log p(x) + KL(q_K ‖ p(z|x)), the quantity the learned step descends.

`--runs DIR,...` scores runs trained earlier (their config.json and newest checkpoint) instead
of training. Writes `<out>/grid.json` and `<out>/grid.md` (a markdown table) and prints the
table, with the rank of each learned run among the fixed ones by test rec MSE and by the
refitted bound.
"""
import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from configs import srinf_fashion
from egm import data
from egm.data import dataset as dataset_lib
from egm.run import experiment, trainer
from egm.run.workdir import open_run

RANKED_BY = ('test_rec_mse', 'test_bound_refit')

def parse_args(argv):
  """The command line of the study (argparse: the module is also imported by tests)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', default='runs/srinf_grid', help='Directory of the runs and table.')
  parser.add_argument('--data_source', default='tfds:fashion_mnist', help='config.data.source.')
  parser.add_argument('--grid', default='0.0125,0.025,0.05,0.1,0.2',
                      help='Fixed steps δ, comma-separated (at least five).')
  parser.add_argument('--learned_inits', default='0.05', help='Initial δ of each learned run.')
  parser.add_argument('--updates', type=int, default=150, help='Training updates of every run.')
  parser.add_argument('--set', default='', help='Config overrides for every run, key=value,...')
  parser.add_argument('--test_examples', type=int, default=1000,
                      help='Test images scored (a seeded sample).')
  parser.add_argument('--reverse_fit_updates', type=int, default=300,
                      help='Adam updates of each run\'s reverse kernel before the refitted bound.')
  parser.add_argument('--reverse_fit_lr', type=float, default=1e-2,
                      help='Learning rate of the reverse-kernel refit.')
  parser.add_argument('--runs', default='',
                      help='Score these trained workdirs (comma-separated) instead of training.')
  args = parser.parse_args(argv)
  if len(args.grid.split(',')) < 5:
    parser.error('--grid needs at least five steps.')
  return args


def run_config(args, step_size: float, learned: bool):
  """The srinf_fashion config of one run of the study."""
  config = srinf_fashion.get_config(args.set or None)
  config.data.source = args.data_source
  config.train.num_steps = args.updates
  config.train.checkpoint_every = args.updates
  config.train.sample_every = 10 * args.updates
  config.srinf.step_size = step_size
  config.srinf.learn_step_size = learned
  config.srinf.step_size_every = 1
  return config


def score(method, state, x, key) -> dict:
  """Test rec MSE and bound of a trained srinf state on images x (N, H, W, C)."""
  @jax.jit
  def batch_scores(x, key):
    k_prior, k_chain = jax.random.split(key)
    z0 = jax.random.normal(k_prior, (x.shape[0],) + method.nets.z_shape, jnp.float32)
    run = method.chain(state, x, z0, k_chain)
    x_rec = method.reconstruct(state, {'x': x}, key)
    return (jnp.mean(jnp.square(x_rec - x), axis=(1, 2, 3)), method.bound(run, z0, x))

  mse, bound = [], []
  for i, start in enumerate(range(0, len(x), 100)):
    m, b = batch_scores(jnp.asarray(x[start:start + 100]), jax.random.fold_in(key, i))
    mse.append(np.asarray(m))
    bound.append(np.asarray(b))
  return {'test_rec_mse': float(np.mean(np.concatenate(mse))),
          'test_bound': float(np.mean(np.concatenate(bound)))}


def refit_reverse_kernel(method, state, train_x, args, key):
  """`state` with its reverse kernel (a, b, log c) refitted to the bound on batches of
  train_x (N, H, W, C), the generator and the step δ held; unchanged without one."""
  params = state['step_size']['params']
  if 'reverse' not in params or args.reverse_fit_updates == 0:
    return state
  opt = optax.adam(args.reverse_fit_lr)

  @jax.jit
  def update(reverse, opt_state, x, key):
    k_prior, k_chain = jax.random.split(key)
    z0 = jax.random.normal(k_prior, (x.shape[0],) + method.nets.z_shape, jnp.float32)
    def bound(reverse):
      run = method.chain(state, x, z0, k_chain, {**params, 'reverse': reverse})
      return jnp.mean(method.bound(run, z0, x))
    grads = jax.grad(bound)(reverse)
    steps, opt_state = opt.update(grads, opt_state, reverse)
    return optax.apply_updates(reverse, steps), opt_state

  reverse, opt_state = params['reverse'], opt.init(params['reverse'])
  rng = np.random.default_rng(0)
  for i in range(args.reverse_fit_updates):
    x = jnp.asarray(train_x[rng.integers(0, len(train_x), 32)])
    reverse, opt_state = update(reverse, opt_state, x, jax.random.fold_in(key, i))
  return {**state, 'step_size': {**state['step_size'], 'params': {**params, 'reverse': reverse}}}


def trained_runs(args):
  """(name, learned, config, state) of each run: trained here, or restored from `--runs`."""
  if args.runs:
    for workdir in args.runs.split(','):
      run = open_run(workdir.rstrip('/'))
      name = os.path.basename(workdir.rstrip('/')).replace('_', ' ')
      yield name, bool(run.config.srinf.learn_step_size), run.config, run.state
    return
  runs = ([(f'learned from {float(s):g}', float(s), True) for s in args.learned_inits.split(',')]
          + [(f'fixed {float(s):g}', float(s), False) for s in args.grid.split(',')])
  for name, step, learned in runs:
    config = run_config(args, step, learned)
    yield name, learned, config, trainer.train(config, os.path.join(args.out, name.replace(' ', '_')))


def main(argv=None):
  args = parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  rows, test_x, train_x = [], None, None
  for name, learned, config, state in trained_runs(args):
    method = experiment.build(config).method
    if test_x is None:
      splits = data.load_dataset(config.data)
      test_x = splits.test.get(dataset_lib.sample_indices(len(splits.test), args.test_examples))['x']
      train_x = splits.train.get(dataset_lib.sample_indices(len(splits.train), 2000))['x']
    scores = score(method, state, test_x, jax.random.key(123))
    refit = refit_reverse_kernel(method, state, train_x, args, jax.random.key(7))
    scores['test_bound_refit'] = score(method, refit, test_x, jax.random.key(123))['test_bound']
    delta = float(jnp.exp(state['step_size']['params']['log_delta']))
    rows.append({'run': name, 'learned': learned, 'final_step_size': delta, **scores})
    print(json.dumps(rows[-1]), flush=True)
  print(write_table(rows, args.out), flush=True)


def learned_ranks(rows, metric: str = 'test_rec_mse') -> dict:
  """{learned run: 1 + the number of fixed-step runs with a lower `metric`}."""
  fixed = [r[metric] for r in rows if not r['learned']]
  return {r['run']: 1 + sum(m < r[metric] for m in fixed) for r in rows if r['learned']}


def write_table(rows, out_dir: str) -> str:
  """Writes grid.json and grid.md (runs by test rec MSE, each learned run's rank among the
  fixed ones) in out_dir; returns the markdown."""
  order = sorted(rows, key=lambda r: r['test_rec_mse'])
  fixed = sum(not r['learned'] for r in rows)
  lines = ['| run | δ at the end | test rec MSE | test bound, kernel as trained (nats) | '
           'test bound, kernel refitted (nats) |', '|---|---|---|---|---|']
  lines += [f"| {r['run']} | {r['final_step_size']:.4g} | {r['test_rec_mse']:.4f} | "
            f"{r['test_bound']:.1f} | {r['test_bound_refit']:.1f} |" for r in order]
  lines.append('')
  names = {'test_rec_mse': 'test rec MSE', 'test_bound_refit': 'refitted test bound'}
  lines += [f'The step learned {run[len("learned "):]} ranks {rank} of {fixed + 1} beside the '
            f'{fixed} fixed steps by {names[metric]}.'
            for metric in RANKED_BY for run, rank in learned_ranks(rows, metric).items()]
  with open(os.path.join(out_dir, 'grid.json'), 'w') as f:
    json.dump(rows, f, indent=2)
  with open(os.path.join(out_dir, 'grid.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  return '\n'.join(lines)


if __name__ == '__main__':
  main()
