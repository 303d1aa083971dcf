"""The results-table script's pieces: which runs it makes, the table, the README insertion."""
import json
import os

import pytest

from egm.errors import EgmError
from studies import results_table


def test_every_generative_method_gets_a_fashion_run():
  runs = {name: (config, extra) for name, config, extra in results_table.entries()}
  assert 'classifier' not in runs
  assert runs['ebm'] == ('configs/ebm_fashion.py', [])
  assert runs['vae'] == ('configs/triangle_fashion.py', ['--config.method=vae'])
  with pytest.raises(EgmError, match='Unknown or non-generative'):
    results_table.entries(['classifier'])


def test_markdown_table_and_readme_insertion(tmp_path):
  results = [{'method': 'vae', 'config': 'configs/triangle_fashion.py',
              'extra': ['--config.method=vae'], 'fid_fashion_classifier': 12.345,
              'kid_fashion_classifier': 0.0123, 'rec_mse': 0.0456, 'step': 900,
              'train_seconds': 240.0},
             {'method': 'ebm', 'config': 'configs/ebm_fashion.py', 'extra': [],
              'fid_fashion_classifier': 50.0, 'kid_fashion_classifier': 0.1, 'step': 300,
              'train_seconds': 250.0}]
  table = results_table.markdown(results, 'fashion_classifier')
  lines = table.splitlines()
  assert lines[0].startswith('| method | config | fid_fashion_classifier | kid_fashion_classifier')
  assert lines[2] == ('| vae | `triangle_fashion.py` `--config.method=vae` | 12.3 | 0.012 | '
                      '0.0456 | 900 | 4.0 min |')
  assert '| ebm | `ebm_fashion.py` | 50 | 0.1 | — | 300 | 4.2 min |' in lines
  readme = tmp_path / 'README.md'
  readme.write_text(f'intro\n{results_table.BEGIN}\nold\n{results_table.END}\nrest\n')
  results_table.insert_into(str(readme), table)
  results_table.insert_into(str(readme), table)  # idempotent
  assert readme.read_text() == f'intro\n{results_table.BEGIN}\n{table}{results_table.END}\nrest\n'
  readme.write_text('no markers')
  with pytest.raises(EgmError, match='markers'):
    results_table.insert_into(str(readme), table)


def test_lanes_split_the_cpus_into_disjoint_equal_shares():
  cpus = sorted(os.sched_getaffinity(0))
  lanes = results_table.lane_cpus(len(cpus))
  assert [sorted(lane) for lane in lanes] == [[c] for c in cpus]
  assert results_table.lane_cpus(1) == [set(cpus)]
  with pytest.raises(EgmError, match='--lanes=0'):
    results_table.lane_cpus(0)
  with pytest.raises(EgmError, match=f'choose 1 to {len(cpus)}'):
    results_table.lane_cpus(len(cpus) + 1)


def test_a_lane_runs_its_command_on_its_cpus_only(tmp_path):
  lane = results_table.lane_cpus(len(os.sched_getaffinity(0)))[-1]
  log = tmp_path / 'log'
  results_table._run(['-c', 'import os; print(sorted(os.sched_getaffinity(0)))'], str(log),
                     cpus=lane)
  assert log.read_text().strip() == str(sorted(lane))


def test_a_method_trained_before_is_only_evaluated_again(tmp_path, monkeypatch):
  if not results_table.flags.FLAGS.is_parsed():
    results_table.flags.FLAGS(['results_table'])
  workdir = tmp_path / 'ebm'
  (workdir / 'eval').mkdir(parents=True)
  (workdir / 'train_seconds.json').write_text(json.dumps({'train_seconds': 123.0}))
  (workdir / 'eval' / 'metrics.json').write_text(json.dumps({'method': 'ebm', 'step': 7}))
  commands = []
  monkeypatch.setattr(results_table, '_run',
                      lambda command, *a, **k: commands.append(command) or 5.0)
  result = results_table.run_method('ebm', 'configs/ebm_fashion.py', [], str(tmp_path))
  assert [c[0] for c in commands] == ['eval.py']
  assert result['train_seconds'] == 123.0 and result['step'] == 7
  (workdir / 'train_seconds.json').unlink()  # a fresh run trains, then records its time
  results_table.run_method('ebm', 'configs/ebm_fashion.py', [], str(tmp_path))
  assert [c[0] for c in commands[1:]] == ['train.py', 'eval.py']
  assert json.loads((workdir / 'train_seconds.json').read_text()) == {'train_seconds': 5.0}
