"""egm: energy-based and latent-variable generative models in JAX/Flax.

`egm.open_run(workdir)` opens a trained run (egm/run/workdir.py); the rest is in the
subpackages (nets, sampling, methods, data, evaluation, run, config, cpu).
"""


def __getattr__(name):
  if name == 'open_run':  # imported on use: `import egm` stays light for the entry points
    from egm.run.workdir import open_run
    return open_run
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
