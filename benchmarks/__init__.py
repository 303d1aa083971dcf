"""Benchmarks of the Langevin sampler and training steps (run: `python -m benchmarks.run`)."""
