"""One config per method on every built-in 2-D density: trained against untrained.

    python -m studies.toy_density_table --out runs/toy_densities \
      --methods triangle,ebm,coopnets --densities all

Each (method, density) trains `configs/<method>_toy2d.py` unchanged but for its data source
(`toy2d:<density>`; `--set` applies the same overrides to every run), then scores the initial
and the trained state with the `density` metric (egm/evaluation/metrics/basic.py):

- `density_tv`: total variation between exp(−E)/Z on the grid and the true density (0 exact,
  1 disjoint); `density_tv_floor` is what an exact energy scores against the same estimate;
- `sample_tv`: the same distance for a histogram of model samples (the ebm's short-run
  chains, coopnets' revised samples, the triangle's generator), beside `sample_tv_floor`.

A run the divergence guard stops is recorded with the guard's message instead of scores.
Each finished run writes `<out>/<method>/<density>/result.json` and is skipped on a rerun (a
stopped study picks up where it was; studies of different methods may run side by side into
one `--out`). Writes `<out>/results.json` and `<out>/table.md` (every finished run under
`<out>`) and prints the table; a row that misses the goal (trained better than untrained on
both distances, density_tv < 0.35) is marked.
"""
import argparse
import importlib
import json
import os

from egm.data import TOY2D_NAMES
from egm.errors import EgmError
from egm.evaluation import evaluate
from egm.run import experiment, trainer
from egm.run.guard import DivergenceError

DENSITY_TV_GOAL = 0.35
SCORES = ('density_tv', 'sample_tv')


def parse_args(argv):
  """The command line of the study (argparse: the module is also imported by tests)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', default='runs/toy_densities', help='Directory of runs and table.')
  parser.add_argument('--methods', default='triangle,ebm,coopnets',
                      help='Methods, comma-separated; each trains configs/<method>_toy2d.py.')
  parser.add_argument('--densities', default='all',
                      help=f'toy2d densities, comma-separated, or all ({", ".join(TOY2D_NAMES)}).')
  parser.add_argument('--set', default='', help='Config overrides for every run, key=value,...')
  args = parser.parse_args(argv)
  args.methods = args.methods.split(',')
  args.densities = list(TOY2D_NAMES) if args.densities == 'all' else args.densities.split(',')
  unknown = sorted(set(args.densities) - set(TOY2D_NAMES))
  if unknown:
    parser.error(f'unknown densities {", ".join(unknown)}; choose from {", ".join(TOY2D_NAMES)}.')
  return args


def run_config(method: str, density: str, overrides: str):
  """`configs/<method>_toy2d.py` on `toy2d:<density>`, scored by the density metric only."""
  try:
    module = importlib.import_module(f'configs.{method}_toy2d')
  except ModuleNotFoundError as e:
    raise EgmError(f'No 2-D config for method {method!r}: configs/{method}_toy2d.py does not '
                   'exist. Drop it from --methods or add that config.') from e
  config = module.get_config(overrides or None)
  config.data.source = f'toy2d:{density}'
  config.eval.metrics = 'density'
  return config


def score_run(method: str, density: str, overrides: str, run_dir: str) -> dict:
  """Trains one run and scores its initial and trained states (or the guard's stop)."""
  config = run_config(method, density, overrides)
  exp = experiment.build(config)
  untrained = evaluate.evaluate_state(exp, exp.init_state(), os.path.join(run_dir, 'untrained'))
  row = {'method': method, 'density': density,
         'untrained': {k: float(untrained[k]) for k in SCORES if k in untrained}}
  try:
    state = trainer.train(config, run_dir)
  except DivergenceError as e:
    return {**row, 'stopped': str(e).splitlines()[0]}
  trained = evaluate.evaluate_state(exp, state, os.path.join(run_dir, 'eval'))
  floors = {f'{k}_floor': float(trained[f'{k}_floor']) for k in SCORES if f'{k}_floor' in trained}
  return {**row, 'trained': {k: float(trained[k]) for k in SCORES if k in trained}, **floors}


def misses_goal(row) -> list[str]:
  """What a row misses of the goal: each distance better trained, density_tv under the goal."""
  if 'stopped' in row:
    return ['stopped by the guard']
  missed = [f'{k} not better than untrained' for k in row['trained']
            if row['trained'][k] >= row['untrained'][k]]
  if row['trained'].get('density_tv', 0.0) >= DENSITY_TV_GOAL:
    missed.append(f'density_tv ≥ {DENSITY_TV_GOAL}')
  return missed


def _cell(row, key) -> str:
  if key not in row['untrained']:
    return '–'
  if 'stopped' in row:
    return f"{row['untrained'][key]:.3f} → stopped"
  return f"{row['untrained'][key]:.3f} → **{row['trained'][key]:.3f}**"


def write_table(rows, out_dir: str) -> str:
  """Writes results.json and table.md (one line per method and density); returns the markdown."""
  lines = ['| method | density | density_tv untrained → trained (floor) | '
           'sample_tv untrained → trained (floor) | goal |', '|---|---|---|---|---|']
  for row in rows:
    missed = misses_goal(row)
    floors = [f" ({row[f'{k}_floor']:.3f})" if f'{k}_floor' in row else '' for k in SCORES]
    lines.append(f"| {row['method']} | {row['density']} | {_cell(row, 'density_tv')}{floors[0]} | "
                 f"{_cell(row, 'sample_tv')}{floors[1]} | "
                 f"{'missed: ' + '; '.join(missed) if missed else 'met'} |")
  met = sum(not misses_goal(r) for r in rows)
  lines += ['', f'{met} of {len(rows)} runs meet the goal (trained better than untrained on '
            f'every distance, density_tv < {DENSITY_TV_GOAL}).']
  with open(os.path.join(out_dir, 'results.json'), 'w') as f:
    json.dump(rows, f, indent=2)
  with open(os.path.join(out_dir, 'table.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  return '\n'.join(lines)


def finished_rows(out_dir: str) -> list[dict]:
  """The result.json of every finished run under out_dir, by method and then density."""
  rows = []
  methods = sorted(m for m in os.listdir(out_dir) if os.path.isdir(os.path.join(out_dir, m)))
  for method in methods:
    for density in TOY2D_NAMES:
      path = os.path.join(out_dir, method, density, 'result.json')
      if os.path.exists(path):
        with open(path) as f:
          rows.append(json.load(f))
  return rows


def main(argv=None):
  args = parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  for method in args.methods:
    for density in args.densities:
      run_dir = os.path.join(args.out, method, density)
      result_path = os.path.join(run_dir, 'result.json')
      if os.path.exists(result_path):
        continue
      row = score_run(method, density, args.set, run_dir)
      with open(result_path, 'w') as f:
        json.dump(row, f, indent=2)
      print(json.dumps(row), flush=True)
  print(write_table(finished_rows(args.out), args.out), flush=True)


if __name__ == '__main__':
  main()
