"""Fetches the real Fashion-MNIST from the Debian package dataset-fashion-mnist.

    python -m egm.data.fashion_mnist DIR

runs `apt-get download dataset-fashion-mnist` and `dpkg-deb -x` into DIR and
prints the data source to use, idx:DIR/usr/share/datasets/fashion-mnist.
The package holds the original images and labels (only the gzip headers
differ from the published files), 60,000 + 10,000 28x28 grey images.
"""
import glob
import os
import subprocess
import sys

from egm.errors import EgmError

PACKAGE = 'dataset-fashion-mnist'
SUBDIR = os.path.join('usr', 'share', 'datasets', 'fashion-mnist')
FILES = ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
         't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')


def fetch(directory: str) -> str:
  """Puts the four .gz files under `directory`; returns the idx: source."""
  target = os.path.join(os.path.abspath(directory), SUBDIR)
  if not all(os.path.isfile(os.path.join(target, f)) for f in FILES):
    os.makedirs(directory, exist_ok=True)
    _run(['apt-get', 'download', PACKAGE], cwd=directory)
    debs = sorted(glob.glob(os.path.join(directory, f'{PACKAGE}_*.deb')))
    _run(['dpkg-deb', '-x', debs[-1], directory])
    os.remove(debs[-1])
    missing = [f for f in FILES if not os.path.isfile(os.path.join(target, f))]
    if missing:
      raise EgmError(
          f'The package {PACKAGE} did not contain {", ".join(missing)} under '
          f'{SUBDIR}. Inspect it with `dpkg-deb -c`, and point idx: at the '
          'directory that holds the four MNIST-format files.')
  return f'idx:{target}'


def _run(command: list[str], cwd: str | None = None) -> None:
  try:
    subprocess.run(command, cwd=cwd, check=True, capture_output=True,
                   text=True)
  except FileNotFoundError as e:
    raise EgmError(
        f'`{command[0]}` is not installed, so {PACKAGE} cannot be fetched '
        'here. On a Debian or Ubuntu machine run `apt-get download '
        f'{PACKAGE} && dpkg-deb -x {PACKAGE}_*.deb DIR` and copy DIR over.'
    ) from e
  except subprocess.CalledProcessError as e:
    raise EgmError(
        f'`{" ".join(command)}` failed with status {e.returncode}: '
        f'{e.stderr.strip()[-500:]} Check that the Debian package index is '
        'reachable (`apt-get update`) and that the directory is writable.'
    ) from e


def main(argv: list[str]) -> int:
  if len(argv) != 2:
    print(__doc__, file=sys.stderr)
    return 2
  try:
    print(fetch(argv[1]))
  except EgmError as e:
    print(e, file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
