"""Trains every generative method on Fashion-MNIST for the same wall-clock budget, evaluates them
with the same metrics and writes one markdown table (also into docs/results.md between markers).
It trains every method: it takes as long as the budget times the methods over the lanes.

    python -m studies.results_table --budget_minutes 4 --out runs/table \
      --data_source idx:data/fashion_mnist/usr/share/datasets/fashion-mnist \
      --feature_workdir runs/classifier_fashion

A method runs with `configs/<method>_fashion.py` when that exists, else with
`configs/triangle_fashion.py --config.method=<method>` (e.g. vae). Training stops after
`train.max_minutes` (the budget; the first steps' compilation included), or at the latest by
SIGTERM a few minutes after it; each run is then evaluated by eval.py. A method whose workdir
holds `train_seconds.json` (written when its training ended) is only evaluated again, so a table
run that was cut short continues where it stopped.
"""
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import time

from absl import flags

from egm import cli
from egm.errors import EgmError
from studies.method_configs import entries

_BUDGET = flags.DEFINE_float('budget_minutes', 4.0, 'Training wall-clock budget per method.')
_OUT = flags.DEFINE_string('out', 'runs/table', 'Directory of the runs and of table.md.')
_SOURCE = flags.DEFINE_string('data_source', 'tfds:fashion_mnist', 'config.data.source.')
_FEATURES = flags.DEFINE_string('feature_workdir', 'runs/classifier_fashion',
                                'A trained configs/classifier_fashion.py run (feature network).')
_NUM_FID = flags.DEFINE_integer('num_fid_samples', 2000, 'Samples behind FID/KID.')
_METHODS = flags.DEFINE_list('methods', [], 'Methods to run (default: every generative one).')
_PAGE = flags.DEFINE_string('page', 'docs/results.md', 'File with the table markers; "" skips.')
_LANES = flags.DEFINE_integer(
    'lanes', 1, 'Methods trained at once, each lane pinned to its own share of the CPU cores '
    '(so every method still gets the same compute; 2 on a 2-core machine halves the wall time).')
_GRACE_S = 180  # SIGTERM this long after the budget if train.max_minutes did not stop the run
BEGIN, END = '<!-- results-table:begin -->', '<!-- results-table:end -->'


def lane_cpus(lanes: int) -> list[set[int]]:
  """This process's CPUs split into `lanes` disjoint, equal shares."""
  cpus = sorted(os.sched_getaffinity(0))
  if not 1 <= lanes <= len(cpus):
    raise EgmError(f'--lanes={lanes}: choose 1 to {len(cpus)} (the CPUs this process may use).')
  share = len(cpus) // lanes
  return [set(cpus[i * share:(i + 1) * share]) for i in range(lanes)]


def _run(command: list[str], log_path: str, timeout_s: float | None = None,
         cpus: set[int] | None = None) -> float:
  """Runs `command` (nice 5, on `cpus`), output to `log_path`; SIGTERM after timeout_s.

  Returns the wall-clock seconds it took.
  """
  start = time.monotonic()
  pin = [] if cpus is None else ['taskset', '-c', ','.join(map(str, sorted(cpus)))]
  with open(log_path, 'w') as log:
    process = subprocess.Popen([*pin, 'nice', '-n', '5', sys.executable, *command], stdout=log,
                               stderr=subprocess.STDOUT)
    try:
      process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
      process.send_signal(signal.SIGTERM)
      process.wait()
  if process.returncode:
    raise EgmError(f'`{" ".join(command)}` failed (exit {process.returncode}); see {log_path}.')
  return time.monotonic() - start


def run_method(name: str, config: str, extra: list[str], out: str,
               cpus: set[int] | None = None) -> dict:
  """Trains and evaluates one method (on `cpus`); returns its eval metrics + `train_seconds`."""
  workdir = os.path.join(out, name)
  os.makedirs(workdir, exist_ok=True)
  overrides = [f'--config.data.source={_SOURCE.value}', *extra]
  train = ['train.py', f'--config={config}', f'--workdir={workdir}', *overrides,
           f'--config.train.max_minutes={_BUDGET.value}']
  trained = os.path.join(workdir, 'train_seconds.json')
  if os.path.exists(trained):  # a table run cut short after this training: do not train more
    with open(trained) as f:
      seconds = json.load(f)['train_seconds']
    print(f'{name}: already trained ({trained})', flush=True)
  else:
    print(f'{name}: training {_BUDGET.value} min ({config} {" ".join(extra)})', flush=True)
    seconds = _run(train, os.path.join(workdir, 'train.log'), 60 * _BUDGET.value + _GRACE_S,
                   cpus)
    with open(trained, 'w') as f:
      json.dump({'train_seconds': seconds}, f)
  evaluate = ['eval.py', f'--config={config}', f'--workdir={workdir}', *overrides,
              f'--config.eval.feature_workdir={_FEATURES.value}',
              f'--config.eval.num_fid_samples={_NUM_FID.value}',
              '--config.eval.metrics=samples,rec_mse,feature_fid']
  print(f'{name}: evaluating', flush=True)
  _run(evaluate, os.path.join(workdir, 'eval.log'), cpus=cpus)
  with open(os.path.join(workdir, 'eval', 'metrics.json')) as f:
    return {**json.load(f), 'train_seconds': seconds, 'config': config, 'extra': extra}


def _number(value, digits: int = 3) -> str:
  return '—' if value is None else f'{value:.{digits}g}'


def markdown(results: list[dict], feature_name: str) -> str:
  """The table: method, feature FID, KID, rec_mse, steps, wall time of the train process."""
  lines = [f'| method | config | fid_{feature_name} | kid_{feature_name} | rec_mse | steps | '
           'train process time |', '|---|---|---|---|---|---|---|']
  for r in results:
    config = ' '.join([f'`{os.path.basename(r["config"])}`'] + [f'`{e}`' for e in r['extra']])
    lines.append(
        f'| {r["method"]} | {config} | {_number(r.get(f"fid_{feature_name}"))} | '
        f'{_number(r.get(f"kid_{feature_name}"), 2)} | {_number(r.get("rec_mse"))} | '
        f'{r["step"]} | {r["train_seconds"] / 60:.1f} min |')
  return '\n'.join(lines) + '\n'


def insert_into(path: str, table: str) -> None:
  """Replaces the text between the BEGIN and END markers of `path` with `table`."""
  with open(path) as f:
    text = f.read()
  if BEGIN not in text or END not in text:
    raise EgmError(f'{path} has no {BEGIN} ... {END} markers; add them where the table goes.')
  pattern = re.escape(BEGIN) + '.*?' + re.escape(END)
  text = re.sub(pattern, lambda _: f'{BEGIN}\n{table}{END}', text, flags=re.S)
  with open(path, 'w') as f:
    f.write(text)


def main(argv):
  del argv
  from egm.evaluation.feature_net import load_feature_net
  feature_name = load_feature_net(_FEATURES.value, (28, 28, 1)).name  # fails early if missing
  os.makedirs(_OUT.value, exist_ok=True)
  runs, lanes = entries(_METHODS.value), lane_cpus(_LANES.value)

  def run_lane(lane: int) -> list[dict]:
    return [run_method(*runs[i], _OUT.value, lanes[lane] if len(lanes) > 1 else None)
            for i in range(lane, len(runs), len(lanes))]

  with concurrent.futures.ThreadPoolExecutor(len(lanes)) as pool:
    by_lane = list(pool.map(run_lane, range(len(lanes))))
  results = sorted((r for lane in by_lane for r in lane), key=lambda r: r['method'])
  table = markdown(results, feature_name)
  with open(os.path.join(_OUT.value, 'table.md'), 'w') as f:
    f.write(table)
  print(table, flush=True)
  if _PAGE.value:
    insert_into(_PAGE.value, table)


if __name__ == '__main__':
  cli.run(main)
