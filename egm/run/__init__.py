"""The run: the training loop, checkpoints, the divergence guard, phases, the experiment a config builds, metric writing, the device mesh and multi-process set-up."""
