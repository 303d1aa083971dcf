"""The run: the training loop, checkpoints, the divergence guard, phases, the experiment a
config builds, opening a workdir, metric writing, the device mesh, multi-process set-up."""
