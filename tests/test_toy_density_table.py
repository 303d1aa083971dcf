"""studies.toy_density_table: the goal per row, the table, resuming a stopped study."""
import json

import pytest

from studies import toy_density_table


def _row(method, density, untrained, trained, stopped=None):
  row = {'method': method, 'density': density,
         'untrained': dict(zip(toy_density_table.SCORES, untrained))}
  if stopped:
    return {**row, 'stopped': stopped}
  return {**row, 'trained': dict(zip(toy_density_table.SCORES, trained)),
          'density_tv_floor': 0.03, 'sample_tv_floor': 0.04}


def test_a_row_meets_the_goal_only_if_better_on_both_distances_and_under_the_density_goal():
  assert toy_density_table.misses_goal(_row('ebm', 'moons', (0.7, 0.7), (0.2, 0.1))) == []
  assert toy_density_table.misses_goal(_row('ebm', 'moons', (0.7, 0.7), (0.4, 0.1))) == [
      'density_tv ≥ 0.35']
  assert toy_density_table.misses_goal(_row('ebm', 'rings', (0.3, 0.7), (0.32, 0.8))) == [
      'density_tv not better than untrained', 'sample_tv not better than untrained']
  assert toy_density_table.misses_goal(_row('ebm', 'rings', (0.3, 0.7), None, 'diverged')) == [
      'stopped by the guard']


def test_the_table_lists_every_row_and_counts_those_meeting_the_goal(tmp_path):
  rows = [_row('triangle', 'moons', (0.66, 0.97), (0.21, 0.16)),
          _row('ebm', 'moons', (0.78, 0.70), (0.49, 0.48)),
          _row('coopnets', 'rings', (0.6, 0.7), None, 'energy diverged')]
  table = toy_density_table.write_table(rows, str(tmp_path))
  assert '| triangle | moons | 0.660 → **0.210** (0.030) | 0.970 → **0.160** (0.040) | met |' in table
  assert '| ebm | moons |' in table and 'missed: density_tv ≥ 0.35' in table
  assert '0.600 → stopped' in table and 'missed: stopped by the guard' in table
  assert '1 of 3 runs meet the goal' in table
  assert json.loads((tmp_path / 'results.json').read_text()) == rows


def test_unknown_densities_and_methods_are_refused(capsys):
  with pytest.raises(SystemExit):
    toy_density_table.parse_args(['--densities', 'moons,blob'])
  assert 'unknown densities blob' in capsys.readouterr().err
  assert len(toy_density_table.parse_args([]).densities) == 8
  with pytest.raises(Exception, match='configs/vae_toy2d.py does not exist'):
    toy_density_table.run_config('vae', 'moons', '')


@pytest.mark.integration
def test_a_study_writes_one_result_per_run_and_a_rerun_skips_them(tmp_path, capsys):
  argv = ['--out', str(tmp_path), '--methods', 'ebm', '--densities', 'moons,rings',
          '--set', 'smoke']
  toy_density_table.main(argv)
  first = capsys.readouterr().out
  results = json.loads((tmp_path / 'results.json').read_text())
  assert [(r['method'], r['density']) for r in results] == [('ebm', 'moons'), ('ebm', 'rings')]
  for row in results:
    assert 0 <= row['trained']['density_tv'] <= 1 and 0 <= row['untrained']['sample_tv'] <= 1
  assert first.count('"method": "ebm"') == 2
  toy_density_table.main(argv)
  assert '"method": "ebm"' not in capsys.readouterr().out  # nothing retrained
  assert (tmp_path / 'table.md').read_text().count('| ebm |') == 2
